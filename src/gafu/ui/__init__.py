"""`gafu ui`: a local web app over the library, one page per stage (the CLI stays the reference).

`server` routes requests and guards them (local clients only, or a token with `--host`; files
from inside the project only); `api` turns each request into one library call; `jobs` runs the
long stages: tagging in a thread, training and sampling in child processes of their own.
"""
