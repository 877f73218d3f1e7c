"""``neonet bundle info|verify``: look inside a model bundle, or check it before trusting it."""

from __future__ import annotations

import json
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="show or verify a model bundle",
        description="Inspect a NeoNet model bundle (a folder or .zip holding bundle.json and *.safetensors weights).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = actions.add_parser(
        "info", help="print the bundle's model card", description="Print the bundle's networks, preprocessing, "
        "threshold, training cohort and metrics (hashes are verified first)."
    )
    info.add_argument("bundle", type=Path, help="bundle folder or .zip")
    info.add_argument("--json", action="store_true", help="print bundle.json as JSON instead of a summary")
    info.set_defaults(func=run_info)
    verify = actions.add_parser(
        "verify", help="check bundle.json and the weight hashes", description="Check bundle.json (format version, "
        "the type and range of every field, its content hash), the SHA-256 of every weight file, and that every "
        "network's weights load as safetensors (never unpickled). "
        "Exit 0 when the bundle is intact, 1 otherwise."
    )
    verify.add_argument("bundle", type=Path, help="bundle folder or .zip")
    verify.set_defaults(func=run_verify)


def run_info(args) -> int:
    from neonet_core.bundle import load_bundle, model_card

    bundle = load_bundle(args.bundle).verify()
    if args.json:
        print(json.dumps(bundle.info, indent=2, sort_keys=True))
        return 0
    print(model_card(bundle.info, str(args.bundle)))
    return 0


def run_verify(args) -> int:
    from neonet_core.bundle import load_bundle

    bundle = load_bundle(args.bundle).verify()
    for name in bundle.networks:
        tensors = bundle.state_dict(name)
        print(f"{name}: {len(tensors)} tensors, {sum(t.numel() for t in tensors.values()):,} parameters, SHA-256 ok")
    from neonet_core.bundle_schema import HASH_FIELD

    hashed = "its content hash matches" if HASH_FIELD in bundle.info else "no content hash (written by an older NeoNet)"
    print(f"bundle.json: fields valid, {hashed}")
    print(f"{args.bundle}: intact ({len(bundle.networks)} network(s), format {bundle.info['format_version']})")
    return 0
