"""``hybrid-serve --model DIR [--host 127.0.0.1] [--port 8000]``: the HTTP service on uvicorn.

SIGHUP reloads the model folder (as ``POST /admin/reload`` does) without dropping a request.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

from hybrid.serving.app import ServeConfig, create_app

logger = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hybrid-serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a folder written by HybridRecommender.save")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    p.add_argument("--max-k", type=int, default=ServeConfig.max_k)
    p.add_argument("--max-body-bytes", type=int, default=ServeConfig.max_body_bytes)
    p.add_argument("--api-key-env", default="HYBRID_API_KEY",
                   help="environment variable holding the key /items and /admin/reload require (unset: none)")
    p.add_argument("--timeout-keep-alive", type=float, default=75.0,
                   help="seconds an idle keep-alive connection stays open (uvicorn's 5 s default races clients "
                        "that reuse a pooled connection just as it closes)")
    p.add_argument("--log-level", default="info")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServeConfig(max_k=args.max_k, max_body_bytes=args.max_body_bytes,
                         api_key=os.environ.get(args.api_key_env) or None, device=args.device)
    try:
        app = create_app(args.model, config)
    except (OSError, ValueError) as error:
        sys.exit(f"hybrid-serve: cannot load {args.model}: {error}")

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        def reload() -> None:
            try:
                app.state.holder.reload()
            except (OSError, ValueError) as error:
                logger.error("SIGHUP reload failed, the previous model is still serving: %s", error)
        threading.Thread(target=reload, name="reload", daemon=True).start()

    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_hangup)
    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_keep_alive=args.timeout_keep_alive)


if __name__ == "__main__":
    main()
