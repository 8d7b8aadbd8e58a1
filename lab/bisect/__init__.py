"""Bisecting a regression: the first commit, or the first patch of a series,
whose kernel shows a target (a finding, a pin leak, a deadlock, a failing
testcase), deterministic or flaky.

  search.py     where to run next and when to stop (pure; flaky-aware)
  target.py     what to look for, and one run's verdict from its summary.json (pure)
  revisions.py  the commits between --good and --bad, or a series' prefixes
  state.py      bisect.json: the setup and every run, for --resume
  report.py     the outcome as data, text, JUnit and summary.json (pure)
  driver.py     the loop: run_job per run, judge, save, finish (effects)
"""
