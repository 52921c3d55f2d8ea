"""`digitlab export`: a saved model as ONNX (softmax probabilities, dynamic batch, metadata inside).

The export is checked against torch before the file is written: the softmax outputs of both on 1,000
MNIST test images (random images, said so, when MNIST is not available) must agree within 1e-4.
`--quantize int8` writes a static int8 model (calibrated on MNIST training images): its check is
top-1 agreement with torch on the 1,000 MNIST test images.
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a saved model to ONNX, checked against torch")
    p.add_argument("run", nargs="?", help="run folder, .safetensors or model .json")
    p.add_argument("--pretrained", action="store_true", help="export the model that ships with digitlab")
    p.add_argument("--onnx", required=True, metavar="MODEL.ONNX", help="the ONNX file to write")
    p.add_argument("--quantize", choices=("int8",), default=None,
                   help="int8: static quantization calibrated on MNIST training images (2-2.5x faster on "
                        "AVX-512 VNNI CPUs; checked by top-1 agreement with torch)")
    p.add_argument("--no-check", action="store_true", help="skip the torch/ONNX Runtime parity check")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def run(args) -> int:
    import json

    from digitlab.errors import ConfigError
    from digitlab.inference.onnx_export import INT8_AGREEMENT, PARITY_TOLERANCE, export_onnx
    from digitlab.models.storage import load_model

    if bool(args.run) == bool(args.pretrained):
        raise ConfigError("give a run folder to export, or --pretrained (not both)")
    model = load_model(None if args.pretrained else args.run)
    result = export_onnx(model, args.onnx, check=not args.no_check, quantize=args.quantize)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"wrote {result['path']} (opset {result['opset']}, input 'image' float32 (N, 1, 28, 28) in [0, 1], "
          "output 'probabilities' (N, classes))")
    if "agreement" in result:
        print(f"int8 parity with torch: top-1 agreement {result['agreement']:.4f} >= {INT8_AGREEMENT} on "
              f"{result['parity_images']} (max |softmax difference| {result['max_abs_diff']:.2e})")
    elif "max_abs_diff" in result:
        print(f"parity with torch: max |softmax difference| {result['max_abs_diff']:.2e} "
              f"< {PARITY_TOLERANCE:g} on {result['parity_images']}")
    else:
        print("parity check skipped (--no-check)")
    return 0
