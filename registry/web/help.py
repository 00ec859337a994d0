"""The help resources of the home page: helplines, reporting platforms, partners named publicly.

They come from a JSON file an operator edits (HELP_RESOURCES_FILE; the bundled default is
registry/data/help_resources.json, which shows the shape). Texts are given per language. A
resource marked ``"minors": true`` is also offered as a next step to a person who says the
photos were taken before the age of 18.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from registry.selectors.partners import participating_platforms
from registry.web.errors import DATABASE_UNAVAILABLE

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HelpResource:
    """A helpline, reporting platform or procedure, in the reader's language."""

    name: str
    description: str
    phone: str
    url: str
    for_minors: bool = False

    @property
    def url_label(self) -> str:
        """The address as a person reads it: no scheme, no ``www.``, no trailing slash."""
        label = self.url.removeprefix("https://").removeprefix("www.")
        return label.removesuffix("/")


@dataclass(frozen=True, slots=True)
class HelpRegion:
    """A heading of the help section (a country, "elsewhere") and its resources."""

    title: str
    resources: tuple[HelpResource, ...]


@dataclass(frozen=True, slots=True)
class HelpResources:
    """What the home page lists: partners named publicly, and where to find help."""

    partners: tuple[str, ...]
    regions: tuple[HelpRegion, ...]

    def for_minors(self) -> tuple[HelpResource, ...]:
        """The resources for images of a minor, in the file's order."""
        return tuple(
            resource
            for region in self.regions
            for resource in region.resources
            if resource.for_minors
        )


_BUNDLED_HELP = Path(__file__).resolve().parent.parent / "data" / "help_resources.json"


class HelpFileError(ValueError):
    """The help resources file is missing, not JSON, or not of the documented shape."""


def _localised(value: object, language: str, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value and all(isinstance(v, str) for v in value.values()):
        text = value.get(language) or value.get("en") or next(iter(value.values()))
        return str(text)
    raise HelpFileError(f"{where}: a text or an object of texts by language")


def _parse_help(data: object, language: str) -> HelpResources:
    if not isinstance(data, dict):
        raise HelpFileError("the file holds a JSON object")
    partners = data.get("partners", [])
    if not isinstance(partners, list) or not all(isinstance(p, str) for p in partners):
        raise HelpFileError("partners: a list of names")
    regions_data = data.get("regions")
    if not isinstance(regions_data, list):
        raise HelpFileError("regions: a list")
    regions = []
    for r, region in enumerate(regions_data):
        if not isinstance(region, dict) or not isinstance(region.get("resources"), list):
            raise HelpFileError(f"regions[{r}]: an object with a title and resources")
        resources = []
        for i, item in enumerate(region["resources"]):
            where = f"regions[{r}].resources[{i}]"
            if not isinstance(item, dict):
                raise HelpFileError(f"{where}: an object")
            url = item.get("url", "")
            phone = item.get("phone", "")
            if not isinstance(url, str) or (url and not url.startswith("https://")):
                raise HelpFileError(f"{where}.url: an https:// address")
            if not isinstance(phone, str) or not all(c.isdigit() or c in "+ " for c in phone):
                raise HelpFileError(f"{where}.phone: digits only")
            minors = item.get("minors", False)
            if not isinstance(minors, bool):
                raise HelpFileError(f"{where}.minors: true or false")
            resources.append(
                HelpResource(
                    name=_localised(item.get("name"), language, f"{where}.name"),
                    description=_localised(
                        item.get("description"), language, f"{where}.description"
                    ),
                    phone=phone,
                    url=url,
                    for_minors=minors,
                )
            )
        title = _localised(region.get("title"), language, f"regions[{r}].title")
        regions.append(HelpRegion(title=title, resources=tuple(resources)))
    return HelpResources(partners=tuple(partners), regions=tuple(regions))


@functools.lru_cache(maxsize=8)
def _read_help(path: str, modified_ns: int) -> object:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise HelpFileError(str(error)) from error


def help_resources(language: str, path: Path | None = None) -> HelpResources:
    """The help resources of HELP_RESOURCES_FILE, in ``language`` (English when missing).

    Re-read when the file changes, so an operator's edit shows without a restart. A broken file
    is logged as an error and the bundled file is used instead: the people who need help still
    see where to find it.
    """
    path = path or settings.HELP_RESOURCES_FILE
    try:
        return _parse_help(_read_help(str(path), path.stat().st_mtime_ns), language)
    except (OSError, HelpFileError) as error:
        if path == _BUNDLED_HELP:
            raise
        logger.error("HELP_RESOURCES_FILE %s is unusable (%s); using the bundled file", path, error)
        return help_resources(language, _BUNDLED_HELP)


def platforms_named(language: str) -> list[str]:
    """The platforms people are told check the registry: the active partners that agreed to be
    named (``listed_publicly``, set in the admin) and those the operator's help file lists
    (platforms that check it through another channel), each once, alphabetically.

    With the database out of reach, the help file's list alone: the home page, with its help
    resources, stays readable through an outage.
    """
    names = {name.casefold(): name for name in help_resources(language).partners}
    try:
        partners = participating_platforms()
    except DATABASE_UNAVAILABLE:
        logger.warning("database unavailable: platforms named from the help file only")
        partners = []
    names.update({name.casefold(): name for name in partners})
    return [names[key] for key in sorted(names)]
