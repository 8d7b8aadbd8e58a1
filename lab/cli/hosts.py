"""`lab hosts run JOB --inventory INV` (a matrix across lab hosts, through
ansible) and `lab hosts probe` (what this host offers lab, as JSON)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import validate


def register(sub) -> None:
    p = sub.add_parser("hosts", help="run a matrix across lab hosts with ansible")
    hsub = p.add_subparsers(dest="hosts_cmd", required=True)
    r = hsub.add_parser(
        "run", help="run a job's matrix across an inventory's hosts, results merged",
        description="Probe the inventory's hosts (cores, memory, qemu), give each its share "
                    "of the matrix weighted by how many guests it runs at once (or the "
                    "shards its lab_shard variables pin), build every kernel once here and "
                    "copy it to the hosts, run the shares with ansible "
                    "(ansible/hosts-run.yml), fetch and merge the results into one "
                    "junit.xml + summary.json, record the run in the history. A host that "
                    "cannot be used or is lost mid-run is named; its cells are "
                    "infrastructure errors. Exit status: the merged run's (0, 1, 2; 2 "
                    "instead of 0 when a host was left out), 3 for bad input (the job, an "
                    "inventory without hosts, pinned shards not covering the matrix).")
    r.add_argument("job", help="job file (YAML)")
    r.add_argument("-i", "--inventory", required=True,
                   help="ansible inventory (a file, or a comma-separated host list)")
    r.add_argument("-o", "--output", help="the merged run directory (default runs/<id>)")
    r.add_argument("--timeout", type=float, default=6 * 3600.0,
                   help="seconds a host's share may take (default 21600)")
    r.add_argument("--poll", type=float, default=10.0,
                   help="seconds between looks at the hosts (default 10)")
    r.set_defaults(func=cmd_hosts_run)
    pr = hsub.add_parser("probe", help="this host's cores, memory, qemu and accelerators "
                                       "as JSON (what lab hosts run asks each host)")
    pr.set_defaults(func=cmd_hosts_probe)


def cmd_hosts_run(args) -> int:
    from ..hostrun import Options, run_hosts
    opts = Options(timeout=validate.seconds(args.timeout, field="--timeout"),
                   poll=validate.seconds(args.poll, field="--poll"))
    return run_hosts(args.job, args.inventory, Path(args.output) if args.output else None, opts)


def cmd_hosts_probe(args) -> int:
    from ..hostrun import probe_here
    print(json.dumps(probe_here()))
    return 0
