"""Prefect flows and tasks around the `syncvp` library. Imports syncvp, never `stages`.

Importing this package first sets the Prefect environment defaults (`pipelines.env`).
"""

from pipelines import env as _env

_env.configure()
