#!/usr/bin/env python3
"""Lint and render a Helm chart offline, like ``helm lint`` and ``helm template``.

Runs on PyPI's helm-python-sdk, which embeds the Helm v4 Go SDK as a shared library
(libhelm_c), so neither a helm binary nor a cluster nor network access is needed.

    offline_helm.py lint CHART [-f VALUES]... [--set KEY=VALUE]... [--strict]
    offline_helm.py template RELEASE CHART [-f VALUES]... [--set KEY=VALUE]... [-n NS]

Values files and ``--set`` expressions are merged left to right as helm merges them:
maps merge key by key, any other value replaces the earlier one, and a null removes the
key. ``template`` prints the rendered manifests as one YAML stream, in file-name order,
without NOTES.txt. A template that calls ``fail`` makes it exit 1 with Helm's message.

Exit status: 0 on success, 1 when linting finds an error (or a warning with
``--strict``) or rendering fails, 2 for invalid arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import helm_python as helm

# Severities of lint messages (helm's support.Severity).
INFO, WARNING, ERROR = 1, 2, 3
SEVERITY_NAMES = {0: "UNKNOWN", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``override`` merged in, as helm merges ``-f`` files."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values(files: list[Path], expressions: list[str]) -> dict[str, Any]:
    """Merge the values files, then the ``--set`` expressions, into one mapping."""
    values: dict[str, Any] = {}
    for path in files:
        values = merge_values(values, helm.values_from_yaml(path.read_text()) or {})
    for expression in expressions:
        values = merge_values(values, helm.parse_set_string(expression))
    return values


def lint(args: argparse.Namespace) -> int:
    values = load_values(args.values, args.set)
    report = helm.lint(
        args.chart,
        values=values,
        strict=args.strict,
        namespace=args.namespace,
        kube_version=args.kube_version,
    )
    threshold = WARNING if args.strict else ERROR
    failed = bool(report.get("errors"))
    for message in report.get("messages", []):
        severity = message.get("severity", 0)
        name = SEVERITY_NAMES.get(severity, str(severity))
        print(f"[{name}] {message.get('path')}: {message.get('error')}")
        failed = failed or severity >= threshold
    for error in report.get("errors") or []:
        print(f"[ERROR] {error}")
    linted = report.get("total_charts_linted", 0)
    print(f"{linted} chart(s) linted, {'failed' if failed else 'no failures'}")
    return 1 if failed else 0


def template(args: argparse.Namespace) -> int:
    values = load_values(args.values, args.set)
    with helm.Chart.load(args.chart) as chart:
        manifests = chart.render(
            values=values,
            name=args.release,
            namespace=args.namespace,
            is_install=True,
        )
    documents = []
    for name in sorted(manifests):
        body = manifests[name].strip()
        if name.endswith("NOTES.txt") or not body:
            continue
        documents.append(f"---\n# Source: {name}\n{body}\n")
    sys.stdout.write("".join(documents))
    return 0


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def common(command: argparse.ArgumentParser) -> None:
        command.add_argument("chart", type=Path, help="chart directory")
        command.add_argument(
            "-f", "--values", type=Path, action="append", default=[],
            help="values file; repeat to merge several, later files win",
        )
        command.add_argument(
            "--set", action="append", default=[],
            help="KEY=VALUE override in helm's --set syntax, applied after the files",
        )
        command.add_argument("-n", "--namespace", default="default", help="release namespace")

    lint_command = commands.add_parser("lint", help="lint the chart like `helm lint`")
    common(lint_command)
    lint_command.add_argument(
        "--strict", action="store_true", help="fail on warnings as well as on errors"
    )
    lint_command.add_argument(
        "--kube-version", help="Kubernetes version to check against, such as v1.33.0"
    )

    template_command = commands.add_parser(
        "template", help="render the manifests like `helm template`"
    )
    template_command.add_argument("release", help="release name")
    common(template_command)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    try:
        return lint(args) if args.command == "lint" else template(args)
    except helm.HelmError as err:
        print(f"error: {args.command} {args.chart}: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
