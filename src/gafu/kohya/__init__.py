"""kohya's sd-scripts files, both ways.

Into gafu (`gafu init --from-kohya`): `read_kohya_files` (`files`, `gui`) reads sd-scripts'
config and dataset TOMLs or kohya_ss's JSON, `map_options` (`options`) turns their options into
`gafu.toml` values (and lists those gafu does not use), `init_from_kohya` (`importer`) writes
the project. Out of gafu (`gafu plan --export kohya`): `export_kohya` (`export`) writes the
plan as sd-scripts' configuration files.
"""

from gafu.kohya.importer import KohyaImport, init_from_kohya

__all__ = ["KohyaImport", "init_from_kohya"]
