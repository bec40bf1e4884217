"""DVC entry points: `python -m stages.<name>`. Each parses its item, loads and validates
params.yaml, and runs one Prefect flow from `pipelines` with the sections it declares."""
