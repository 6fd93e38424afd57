"""`python3 edgekd_runner ...`: the folder copied to the device, started with the device's own python3."""

import importlib
import importlib.util
import os
import sys

if __package__:  # python -m edgekd.device_runner on a host
    from .cli import main
else:
    # Started as a folder: Python put the folder itself first on sys.path, where its modules (cli, common, ...)
    # could shadow installed ones. Take it off and import the folder as the package `edgekd_runner` by location,
    # so neither the folder nor its parent (the device's work folder) is searched for anything else.
    _here = os.path.dirname(os.path.abspath(__file__))
    del sys.path[0]
    _spec = importlib.util.spec_from_file_location("edgekd_runner", os.path.join(_here, "__init__.py"),
                                                   submodule_search_locations=[_here])
    sys.modules["edgekd_runner"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["edgekd_runner"])
    main = importlib.import_module("edgekd_runner.cli").main

sys.exit(main(sys.argv[1:]))
