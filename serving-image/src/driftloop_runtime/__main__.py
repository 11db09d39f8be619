"""``driftloop-runtime train|profile|serve``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import driftloop_contract as contract
from driftloop_contract import ProfileResult, TrainResult

log = logging.getLogger("driftloop_runtime")


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get(contract.ENV_LOG_LEVEL, "INFO").upper(),
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
        stream=sys.stderr,
    )


def termination_log_path() -> str:
    return os.environ.get(contract.ENV_TERMINATION_LOG, contract.TERMINATION_MESSAGE_PATH)


def write_result(result: ProfileResult | TrainResult) -> None:
    text = contract.dump_result(result)
    print(text, flush=True)
    path = termination_log_path()
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        log.warning("cannot write the termination message to %s: %s", path, exc)


def _request_json(args: argparse.Namespace) -> str:
    if args.request_file:
        with open(args.request_file, encoding="utf-8") as fh:
            return fh.read()
    text = os.environ.get(contract.ENV_REQUEST)
    if not text:
        raise SystemExit(f"{contract.ENV_REQUEST} is not set")
    return text


def run_job(command: str, args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from driftloop_runtime.errors import RuntimeFailureError
    from driftloop_runtime.store import StoreError

    result_cls: type[TrainResult] | type[ProfileResult] = (
        TrainResult if command == contract.COMMAND_TRAIN else ProfileResult
    )
    try:
        raw = _request_json(args)
        if command == contract.COMMAND_TRAIN:
            from driftloop_runtime.train import train

            result: TrainResult | ProfileResult = train(
                contract.TrainRequest.model_validate_json(raw)
            )
        else:
            from driftloop_runtime.train import run_profile

            result = run_profile(contract.ProfileRequest.model_validate_json(raw))
    except ValidationError as exc:
        log.error("invalid %s: %s", contract.ENV_REQUEST, exc)
        write_result(result_cls(ok=False, reason=contract.REASON_INVALID_REQUEST, message=str(exc)))
        return contract.EXIT_INVALID_INPUT
    except RuntimeFailureError as exc:
        log.error("%s failed: %s (rule=%s column=%s)", command, exc.message, exc.rule, exc.column)
        write_result(
            result_cls(
                ok=False, reason=exc.reason, rule=exc.rule, column=exc.column, message=exc.message
            )
        )
        return exc.exit_code
    except StoreError as exc:  # transient: the Job's next pod retries
        log.error("%s failed: artifact store: %s", command, exc)
        write_result(
            result_cls(
                ok=False, reason=contract.REASON_ARTIFACT_STORE_UNAVAILABLE, message=str(exc)
            )
        )
        return contract.EXIT_ERROR
    except Exception as exc:
        log.exception("%s failed unexpectedly", command)
        write_result(
            result_cls(
                ok=False,
                reason=contract.REASON_TRAINING_FAILED,
                message=f"{type(exc).__name__}: {exc}",
            )
        )
        return contract.EXIT_ERROR
    write_result(result)
    return contract.EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=contract.ENTRYPOINT, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (
        (contract.COMMAND_TRAIN, "train a model (request JSON in $DRIFTLOOP_REQUEST)"),
        (contract.COMMAND_PROFILE, "validate, digest and profile a dataset"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--request-file", help="read the request JSON from a file instead")
    sub.add_parser(contract.COMMAND_SERVE, help="serve a model (config from DRIFTLOOP_* env)")
    args = parser.parse_args(argv)
    setup_logging()
    if args.command == contract.COMMAND_SERVE:
        from driftloop_runtime.serve import main as serve_main

        return serve_main()
    return run_job(args.command, args)


if __name__ == "__main__":
    sys.exit(main())
