"""``python -m reproduce export RUN_DIR --out DIR [--push ORG/REPO]``: a finished training run as a saved model."""
from __future__ import annotations

from ..export import export_run


def register(sub) -> None:
    parser = sub.add_parser(
        "export", help="turn a finished training run into a saved model (and publish it)",
        description="Write the weights of a finished training run as a saved model (config.json, model.safetensors "
                    "and a model card built from the run's record: measured metrics, config, seed, commit), "
                    "loadable with zoo.load(DIR); --push also publishes it on the Hugging Face Hub.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a finished training run directory (with record.json)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory to write the saved model to")
    parser.add_argument("--push", metavar="ORG/REPO", help="also upload it to this Hugging Face Hub repository")
    parser.add_argument("--token", help="Hugging Face token (default: HF_TOKEN or your saved login)")
    parser.set_defaults(func=run)


def run(args) -> int:
    out = export_run(args.run_dir, args.out, push=args.push, token=args.token)
    print(f"wrote {out}; load it with zoo.load({str(out)!r})" + (f"; pushed to hf-hub:{args.push}" if args.push
                                                                  else ""))
    return 0
