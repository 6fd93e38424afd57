"""The device runner: the code that runs ON THE DEVICE, copied there whole as a folder named `edgekd_runner`.

It verifies artifact hashes, then profiles or smoke-tests one model and prints one JSON line. The device has
no edgekd, so nothing here imports edgekd, and nothing beyond the standard library is imported until a mode
needs numpy and a runtime. Its modules import each other relatively, so the same files are
`edgekd.device_runner` on the host and `edgekd_runner` on the device.

    python3 edgekd_runner profile model.onnx --expect model.onnx=<sha256> --runtime onnxruntime \
        --threads 4 --warmup 10 --runs 100
    python3 edgekd_runner verify --expect a.onnx=<sha256> --expect b.xml=<sha256>
    python3 edgekd_runner exec --expect a.onnx=<sha256> -- trtexec --onnx=a.onnx ...

- `cli.py`: the modes and the command line; `common.py`: hashes, input shapes, the errors;
  `board.py`: the device's environment and its clock and throttle state.
- `runtimes/NAME.py`: one file per runtime the runner times, each with a `Model` class. A backend whose files
  the runner should time adds its file there (docs/decisions.md, "Adding a backend").
"""
