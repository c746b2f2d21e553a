"""Which concept folder each original goes to (D5: `<outer>/<repeats>_<name>/`).

A set's folder of originals (`[sources] target` / `reg`) goes to the set's own concept folder,
`<repeats>_<trigger>` or `<repeats>_reg`, except its subfolders named `<repeats>_<name>`: those
are kohya concept folders already, and each keeps its repeats and name. Every
`[[sources.concepts]]` folder becomes a concept folder `<repeats>_<name>` of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gafu.config import ConceptSource, SetName
from gafu.errors import GafuError
from gafu.layout import concept_folder_name, parse_concept_folder
from gafu.project import Project


@dataclass
class ConceptGroup:
    """The originals that become one concept folder of the dataset."""

    folder: Path  # the concept folder prep writes, e.g. PROJECT/dataset/train/10_mzh
    root: Path  # output names come from the originals' paths relative to this folder
    origin: str  # where the originals come from, for messages: `sources.target/10_mzh` …
    originals: list[Path] = field(default_factory=list)

    @property
    def repeats(self) -> int:
        """The repeats in the concept folder's name (D5)."""
        parsed = parse_concept_folder(self.folder.name)
        return parsed[0] if parsed else 0

    def row(self, project_root: Path) -> dict:
        """For the prep summary."""
        return {
            "folder": self.folder.relative_to(project_root).as_posix(),
            "repeats": self.repeats,
            "originals": len(self.originals),
            "from": self.origin,
        }


def main_folder_groups(project: Project, which: SetName, originals: list[Path]) -> list[ConceptGroup]:
    """The originals of `[sources] target`/`reg` by concept folder: its `<repeats>_<name>` subfolders
    keep their names, everything else goes to the set's own concept folder."""
    folder = project.source_dir(which)
    assert folder is not None
    groups: dict[str, ConceptGroup] = {}
    roots: dict[str, set[Path]] = {}
    for original in originals:
        top = original.relative_to(folder).parts[0]
        kept = (folder / top).is_dir() and parse_concept_folder(top) is not None
        output = project.set_dir(which) / top if kept else project.concept_dir(which)
        origin = f"sources.{which}/{top}" if kept else f"sources.{which}"
        group = groups.setdefault(output.name, ConceptGroup(output, folder / top if kept else folder, origin))
        group.originals.append(original)
        roots.setdefault(output.name, set()).add(folder / top if kept else folder)
    for name, group in groups.items():
        if len(roots[name]) > 1:  # a subfolder named like the set's own concept folder: one folder
            group.root, group.origin = folder, f"sources.{which}"
    return list(groups.values())


def loose_originals_warning(groups: list[ConceptGroup], which: SetName) -> str | None:
    """A warning when a folder holding kohya concept folders also holds pictures outside them."""
    kept = [group for group in groups if group.origin.startswith(f"sources.{which}/")]
    loose = [group for group in groups if group.origin == f"sources.{which}"]
    if not kept or not loose:
        return None
    count = len(loose[0].originals)
    return (
        f"sources.{which} holds {count} picture(s) outside its `<repeats>_<name>` folders: they go to "
        f"{loose[0].folder.name} (kohya would skip them; move them into a concept folder to train them "
        "with its repeats)"
    )


def concept_source_group(
    project: Project, index: int, concept: ConceptSource, originals: list[Path]
) -> ConceptGroup:
    """The group of one `[[sources.concepts]]` folder: `<repeats>_<name>` (D5)."""
    folder = project.resolve(concept.folder)
    name = concept.name or _name_part(folder.name)
    output = project.set_dir(concept.set) / concept_folder_name(concept.repeats, name)
    return ConceptGroup(output, folder, f"sources.concepts[{index}]", list(originals))


def check_distinct(groups: list[ConceptGroup], config_path: Path) -> None:
    """Two folders of originals may not fill the same concept folder (their names would collide)."""
    seen: dict[str, ConceptGroup] = {}
    for group in groups:
        other = seen.setdefault(group.folder.name.casefold(), group)
        if other is not group:
            raise GafuError(
                f"{other.origin} and {group.origin} would both become the concept folder {group.folder.name}",
                path=config_path,
                hint="give one of them another name or repeats in [[sources.concepts]]",
            )


def _name_part(folder_name: str) -> str:
    """`10_mzh` → `mzh`; a name without `<repeats>_` as it is."""
    parsed = parse_concept_folder(folder_name)
    return parsed[1] if parsed else folder_name
