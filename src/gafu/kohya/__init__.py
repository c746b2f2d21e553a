"""Bringing a kohya dataset and configuration into gafu (`gafu init --from-kohya`).

`read_kohya_files` reads sd-scripts' config and dataset TOMLs or kohya_ss's JSON,
`map_options` turns their options into `gafu.toml` values (and lists those gafu does not use),
`init_from_kohya` writes the project. The way back is `gafu plan --export kohya`
(`gafu.plan.kohya`).
"""

from gafu.kohya.importer import KohyaImport, init_from_kohya

__all__ = ["KohyaImport", "init_from_kohya"]
