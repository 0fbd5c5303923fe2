"""Contrastive training pairs from a MediaWiki XML dump (real text that is no evaluation data).

Each article gives a title -> lead-paragraph pair and "title: section" -> section-paragraph pairs;
the negative of a pair is a paragraph of another article. Markup is stripped well enough for
training text: links keep their label, templates, tables, references, files and tags go.
"""

from __future__ import annotations

import bz2
import html
import random
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

LEAD_INSTRUCTION = "Given a Wikipedia article title, retrieve a passage from the article"
SECTION_INSTRUCTION = (
    "Given a Wikipedia article title and section heading, retrieve a passage from that section"
)

# sections whose text is lists of references rather than prose
_SKIPPED_SECTIONS = {
    "see also",
    "references",
    "notes",
    "external links",
    "further reading",
    "bibliography",
    "sources",
}
_NON_ARTICLE_LINK = re.compile(
    r"^\s*:?\s*(file|image|category|media|[a-z]{2,3}(-[a-z]+)?)\s*:", re.IGNORECASE
)
_HEADING = re.compile(r"^(={2,6})\s*(.*?)\s*\1\s*$")


@dataclass(frozen=True)
class WikiPage:
    title: str
    text: str  # raw wikitext


@dataclass(frozen=True)
class Section:
    heading: str | None  # None: the lead, before the first heading
    paragraphs: list[str]


def read_pages(path: str | Path) -> list[WikiPage]:
    """Articles (namespace 0, no redirects) of a MediaWiki XML export, `.bz2`-compressed or plain, in file order."""
    opener = bz2.open if str(path).endswith(".bz2") else open
    pages = []
    with opener(path, "rb") as stream:
        for _, element in ET.iterparse(stream):
            if _local(element.tag) != "page":
                continue
            fields = {_local(child.tag): child for child in element}
            text = next((c.text for c in element.iter() if _local(c.tag) == "text"), None)
            if fields["ns"].text == "0" and "redirect" not in fields and text:
                pages.append(WikiPage(fields["title"].text, text))
            element.clear()
    return pages


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def clean_wiki_markup(text: str) -> str:
    """Plain text of wikitext; line structure (headings, blank lines between paragraphs) is kept."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"<ref[^>/]*/>", "", text, flags=re.IGNORECASE)
    text = re.sub(r"<ref[^>]*>.*?</ref\s*>", "", text, flags=re.IGNORECASE | re.DOTALL)
    text = re.sub(
        r"<(math|gallery|timeline|syntaxhighlight|source)[^>]*>.*?</\1\s*>", "", text, flags=re.DOTALL
    )
    text = _remove_nested(text, r"\{\{[^{}]*\}\}")  # templates, innermost first
    text = _remove_nested(text, r"\{\|.*?\|\}", flags=re.DOTALL)  # tables
    text = _replace_links(text)
    text = re.sub(r"\[(?:https?:)?//\S+\s+([^\]]*)\]", r"\1", text)  # [url label] -> label
    text = re.sub(r"\[(?:https?:)?//\S+\]", "", text)
    text = re.sub(r"'{2,}", "", text)  # bold, italics
    text = re.sub(r"</?[a-zA-Z][^>]*>", "", text)  # remaining tags (<small>, <br />, ...)
    text = html.unescape(text).replace("\u00a0", " ")
    return "\n".join(re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n"))


def _remove_nested(text: str, pattern: str, flags: int = 0) -> str:
    while True:
        text, count = re.subn(pattern, "", text, flags=flags)
        if not count:
            return text


def _replace_links(text: str) -> str:
    """[[target|label]] -> label, [[target]] -> target; file, category and interlanguage links go."""

    def replace(match: re.Match) -> str:
        inner = match.group(1)
        if _NON_ARTICLE_LINK.match(inner):
            return ""
        return inner.rsplit("|", 1)[-1]

    while True:  # innermost first: a file caption may hold links
        text, count = re.subn(r"\[\[([^\[\]]*)\]\]", replace, text)
        if not count:
            return text


def split_sections(clean_text: str, min_words: int = 25) -> list[Section]:
    """Prose paragraphs (at least `min_words` words) under each heading; lists, tables and short lines go."""
    sections = [Section(None, [])]
    paragraph: list[str] = []

    def end_paragraph() -> None:
        joined = " ".join(paragraph)
        if len(joined.split()) >= min_words:
            sections[-1].paragraphs.append(joined)
        paragraph.clear()

    for line in clean_text.split("\n"):
        heading = _HEADING.match(line)
        if heading:
            end_paragraph()
            sections.append(Section(heading.group(2), []))
        elif not line or line[0] in "*#:;|!{}":
            end_paragraph()
        else:
            paragraph.append(line)
    end_paragraph()
    return [s for s in sections if s.paragraphs and (s.heading or "").lower() not in _SKIPPED_SECTIONS]


def truncate_words(text: str, max_words: int) -> str:
    """The first `max_words` words, ending at the last sentence end among them when there is one past half."""
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words)
    cut = " ".join(words[:max_words])
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end > len(cut) // 2 else cut


def build_training_pairs(
    pages: list[WikiPage], sections_per_page: int = 5, max_words: int = 80, seed: int = 0
) -> list[dict]:
    """Training lines {query, positive, negative, instruction}, deterministic for a given input and seed.

    Per article: the title -> its first lead paragraph, and "title: heading" -> the first paragraph
    of each of its first `sections_per_page` sections. The negative is a paragraph of another article.
    5 sections make 519 pairs of the demo's 106 articles: its 60 steps of 8 see 480 of them once
    each, so no demo variant trains on a triple twice.
    """
    articles = []
    for page in pages:
        sections = split_sections(clean_wiki_markup(page.text))
        if sections and sections[0].heading is None:  # articles without a lead paragraph are skipped
            articles.append((page.title, sections))
    if len(articles) < 2:
        raise ValueError(
            f"need at least 2 articles with a lead paragraph to draw negatives from, found {len(articles)}"
        )
    rng = random.Random(seed)
    pairs = []
    for index, (title, sections) in enumerate(articles):
        for section in sections[: 1 + sections_per_page]:
            other_title, other_sections = articles[
                rng.choice([i for i in range(len(articles)) if i != index])
            ]
            other_section = rng.choice(other_sections)
            pairs.append(
                {
                    "query": title if section.heading is None else f"{title}: {section.heading}",
                    "positive": truncate_words(section.paragraphs[0], max_words),
                    "negative": truncate_words(rng.choice(other_section.paragraphs), max_words),
                    "instruction": LEAD_INSTRUCTION if section.heading is None else SECTION_INSTRUCTION,
                }
            )
    return pairs
