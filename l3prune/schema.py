"""JSON-schema checks that fail with one line: where in the document, what is wrong, what is allowed."""

from collections.abc import Mapping

import jsonschema


def schema_violation(data, schema: Mapping) -> tuple[str, str] | None:
    """The most relevant way `data` breaks `schema`, as (where, message), or None when it conforms.

    `where` is the dotted key path (`models.demo.resources.train.gpu`, `local_tasks[0].type`), or
    `top level`.
    """
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    message = error.message
    if error.validator == "additionalProperties" and "properties" in error.schema:
        message += f"; allowed keys: {', '.join(error.schema['properties'])}"
    return where or "top level", message
