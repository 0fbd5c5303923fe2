"""A real one-node SLURM cluster on localhost: Debian's slurmctld and slurmd, munge, fake GPUs.

The cluster runs as root, without cgroups or an accounting database (facts in
shared/notes/snakemake-slurm.md). SLURM's own records of the jobs: the controller log (each
submission), the job completion log (`jobcomp/filetxt`: id, state, node of every ended job) and
`scontrol show job`, which keeps an ended job for MinJobAge=600 s, GPUs granted included. The
daemons keep state, logs and pid files in a scratch folder; only the config has to live in
/etc/slurm, because the jobstep plugin's inner `srun` ignores SLURM_CONF.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CONFIG_DIR = Path("/etc/slurm")
CONFIG_FILES = ("slurm.conf", "gres.conf")
# first line of every config this harness writes: a config without it belongs to someone else
MARK = "# l3prune test cluster"
DAEMONS = ("slurmctld", "slurmd")
MUNGE_DIR = Path("/run/munge")
MUNGE_PID_FILE = MUNGE_DIR / "munged.pid"
# fake GPUs: gres.conf needs one existing file per device, and a `Count=` line leaves the node INVAL
GPU_FILES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random")


def missing_requirement() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    for program in ("slurmctld", "slurmd", "sbatch", "munged"):
        if shutil.which(program) is None:
            return f"{program} is not installed (run .ci/install-slurm)"
    if os.geteuid() != 0:
        return "a localhost SLURM cluster runs its daemons as root"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_record(text: str) -> dict[str, str]:
    """`Key=Value Key=Value ...` (scontrol, jobcomp) as a dict; a value holds no space."""
    return dict(field.split("=", 1) for field in text.split() if "=" in field)


def run(*command: str, **kwargs) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs).stdout


@dataclass
class SlurmCluster:
    """One node named after this host with `gpus` fake GPUs, one partition `debug`.

    start() and stop() are safe to call after a failure: stop() ends only the daemons this
    cluster started, by their pid files.
    """

    root: Path
    gpus: int = 2
    config_dir: Path = CONFIG_DIR
    start_timeout_s: float = 30.0

    def __post_init__(self):
        self.host = socket.gethostname().split(".")[0]
        self.started_munge = False
        if self.gpus > len(GPU_FILES):
            raise ValueError(f"gpus={self.gpus}: a test node has at most {len(GPU_FILES)} fake GPUs")

    @property
    def jobcomp_log(self) -> Path:
        return self.root / "jobcomp.log"

    @property
    def controller_log(self) -> Path:
        return self.root / "slurmctld.log"

    def pid_file(self, daemon: str) -> Path:
        return self.root / f"{daemon}.pid"

    # --- start and stop ---

    def start(self) -> None:
        self.check_config_dir_is_free()
        for folder in ("state", "spool"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self.start_munge()
        self.write_config()
        subprocess.run(["slurmctld", "-i"], check=True)
        subprocess.run(["slurmd"], check=True)
        self.wait_for_idle_node()

    def stop(self) -> None:
        """Cancel every job, end the daemons, remove the config."""
        if self.pid_alive("slurmctld"):
            subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True)
            try:  # slurmd signals the jobs' processes: give it the time before it goes
                wait_until(self.queue_is_empty, 30, "")
            except TimeoutError:
                pass  # SIGKILL after KillWait=5 s has not ended them; the daemons go all the same
        for daemon in reversed(DAEMONS):
            self.kill(self.pid_file(daemon))
        for name in CONFIG_FILES:
            path = self.config_dir / name
            if path.exists() and path.read_text().startswith(MARK):
                path.unlink()
        if self.started_munge:
            self.kill(MUNGE_PID_FILE)
            self.started_munge = False

    def check_config_dir_is_free(self) -> None:
        """Refuse to replace a config this harness did not write, or one whose cluster still runs."""
        for name in CONFIG_FILES:
            path = self.config_dir / name
            if not path.exists():
                continue
            text = path.read_text()
            if not text.startswith(MARK):
                raise RuntimeError(f"{path} exists and was not written by the test harness; not replacing it")
            owner = Path(text.splitlines()[0].removeprefix(MARK).strip())
            if any(pid_of(owner / f"{daemon}.pid") for daemon in DAEMONS):
                raise RuntimeError(f"{path}: another test cluster (state in {owner}) is still running")

    def start_munge(self) -> None:
        """Use a running munged, else start one as user munge (SLURM needs it to authenticate)."""
        if munge_works():
            return
        MUNGE_DIR.mkdir(exist_ok=True)
        shutil.chown(MUNGE_DIR, "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True)
        self.started_munge = True
        wait_until(munge_works, 10, "munged did not answer")

    def write_config(self) -> None:
        """slurm.conf and gres.conf into the scratch folder (kept with the logs) and /etc/slurm."""
        node = parse_record(run("slurmd", "-C").splitlines()[0])
        memory_mb = min(int(node["RealMemory"]), available_memory_mb()) * 3 // 4
        hardware = " ".join(
            f"{key}={node[key]}"
            for key in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
        )
        r = self.root
        slurm_conf = f"""{MARK} {r}
ClusterName=l3prune-test
SlurmctldHost={self.host}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp_log}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
MinJobAge=600
KillWait=5
ReturnToService=2
MailProg=/bin/true
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={self.pid_file("slurmctld")}
SlurmdPidFile={self.pid_file("slurmd")}
SlurmctldLogFile={self.controller_log}
SlurmdLogFile={r}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
GresTypes=gpu
NodeName={self.host} {hardware} RealMemory={memory_mb} Gres=gpu:{self.gpus} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
        gres_conf = f"{MARK} {r}\n" + "".join(
            f"NodeName={self.host} Name=gpu File={file}\n" for file in GPU_FILES[: self.gpus]
        )
        for name, text in zip(CONFIG_FILES, (slurm_conf, gres_conf), strict=True):
            (r / name).write_text(text)
            self.config_dir.mkdir(exist_ok=True)
            shutil.copyfile(r / name, self.config_dir / name)

    def wait_for_idle_node(self) -> None:
        def idle():
            if not self.pid_alive("slurmctld"):
                errors = [line for line in self.controller_log.read_text().splitlines() if "fatal" in line]
                raise RuntimeError(f"slurmctld stopped: {errors[-1] if errors else self.controller_log}")
            result = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
            return result.stdout.strip() == "idle"

        wait_until(idle, self.start_timeout_s, f"node {self.host} not idle; see {self.root}/slurm*.log")

    def queue_is_empty(self) -> bool:
        return run("squeue", "-h", "-o", "%i").strip() == ""

    def pid_alive(self, daemon: str) -> bool:
        return pid_of(self.pid_file(daemon)) is not None

    @staticmethod
    def kill(pid_file: Path, timeout_s: float = 10.0) -> None:
        pid = pid_of(pid_file)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        try:
            wait_until(lambda: not alive(pid), timeout_s, "")
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not alive(pid), timeout_s, f"{pid_file}: process {pid} survived SIGKILL")

    # --- jobs ---

    def sbatch(self, *args: str) -> str:
        """Submit a batch job; returns its id."""
        return run("sbatch", "--parsable", *args).strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` (kept MinJobAge=600 s after the job ends) as a dict."""
        return parse_record(run("scontrol", "show", "job", "--oneliner", job_id))

    def wait_for_job(self, job_id: str, timeout_s: float = 60.0) -> dict[str, str]:
        """Wait until the job has ended; returns its `scontrol show job` record."""
        ended = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED")
        wait_until(lambda: self.job(job_id)["JobState"] in ended, timeout_s, f"job {job_id} did not end")
        return self.job(job_id)

    def finished_jobs(self) -> dict[str, dict[str, str]]:
        """SLURM's job completion log: job id -> its record (JobState, NodeList, WorkDir, ExitCode...)."""
        if not self.jobcomp_log.exists():
            return {}
        records = (parse_record(line) for line in self.jobcomp_log.read_text().splitlines())
        return {record["JobId"]: record for record in records}


def pid_of(pid_file: Path) -> int | None:
    """The pid in a pid file when that process is alive, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if alive(pid) else None


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, ended but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def munge_works() -> bool:
    credential = subprocess.run(["munge", "-n"], capture_output=True)
    return (
        credential.returncode == 0
        and subprocess.run(["unmunge"], input=credential.stdout, capture_output=True).returncode == 0
    )


def available_memory_mb() -> int:
    meminfo = dict(line.split(":") for line in Path("/proc/meminfo").read_text().splitlines())
    return int(meminfo["MemAvailable"].split()[0]) // 1024


def wait_until(condition, timeout_s: float, message: str, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(interval_s)
