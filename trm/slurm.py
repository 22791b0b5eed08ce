"""submitit launching: SLURM with job re-attachment (the Dora pattern), and local.

The resources a job asks for (their names, checks and per-run values) are trm.resources.

Re-attachment. The SLURM job id is written to RUN_DIR/submitit/job_id as soon as sbatch
returns, and every submission is appended to RUN_DIR/submitit/submissions.log. A later
launcher for the same run (Snakemake restarted, `--rerun-incomplete`) asks SLURM about that
id and, if the job is still pending or running, waits for it instead of submitting again.
Jobs are also named after their run directory, so a launcher killed between sbatch and
writing job_id still finds its job by name.

Recovery without pickles. The job writes its outcome twice: RUN_DIR/metrics.json and a copy
in RUN_DIR/submitit/outcome.json ({"job_id", "metrics"}). When Snakemake alone was killed, its
orphaned launcher still sees the job finish, but Snakemake never records it and, restarted
with --rerun-incomplete, deletes metrics.json. The launcher therefore notes whether its
Snakemake was still alive ("finished" vs "finished-undelivered" in submissions.log), and a
restart rewrites metrics.json from outcome.json instead of submitting again. Nothing from
a run directory is ever unpickled here (submitit's result pickles are only stat'ed).

Waiting. The outcome of record is RUN_DIR/metrics.json, written last by the job. The waiter
stats it every poll_s and asks `squeue` (then `sacct`) for the job's state and reason:
without accounting, submitit never sees a cancelled job finish, so a job that has left the
queue without a result is reported as lost after a grace period, and recorded failed (the
tables show it; the plain command retries it). A job SLURM holds (a node failure gives
`launch failed requeued held`; JobHeldAdmin, JobHeldUser, BeginTime) is reported within a
minute, with the `scontrol release` command that frees it, and recorded failed after
held_grace_min. Waiting has a deadline; when it passes, the launcher exits non-zero and
leaves the job alone (a re-run re-attaches to it). The launcher never cancels a job:
stopping Snakemake leaves the jobs running.

Preemption and time limits. The job runs `trm.launch.TrainJob`, a submitit Checkpointable:
on USR2 submitit requeues the same job (same id), which resumes from the run's checkpoint.
`scontrol requeue` works the same way. Each USR2 is logged in RUN_DIR/interruptions.jsonl as
a preemption or a time-out (submitit's own rule), and run_info.json counts them apart.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trm import config as C
from trm import rundir
from trm.files import atomic_write_text
from trm.resources import Resources, extra_parameters, refuse_control

# squeue / sacct states of a job that may still produce a result.
LIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
               "COMPLETING", "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}
MIN_GRACE_S = 10.0  # a job gone from the queue gets this long for its result to show up
UNKNOWN = "UNKNOWN"  # SLURM could not be asked (controller busy or down): keep waiting


class JobFailed(RuntimeError):
    """The job ran and raised (its traceback is in the message)."""


class JobLost(RuntimeError):
    """The job left the queue without a result (cancelled, out of memory, node failure)."""


class JobHeld(JobLost):
    """SLURM held the job longer than held_grace_min (it never started again)."""


# Pending reasons that mean "will not start by itself": someone must release the job.
# `launch failed requeued held` is what a node failure at launch leaves; BeginTime counts
# too once it outlasts the report delay (a requeued job has a short BeginTime of its own).
HELD_REASON = re.compile(r"held|BeginTime", re.I)
HELD_STATES = {"REQUEUE_HOLD", "SPECIAL_EXIT"}
HELD_REPORT_S = 30.0  # an explicit hold lasting this long is reported
# A requeued job waits out BeginTime for cred_expire (120 s by default): report only a longer one.
BEGIN_TIME_REPORT_S = 300.0


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

# sbatch errors worth retrying (the controller was busy); anything else fails at once.
TRANSIENT = re.compile(r"timed out|timeout|temporarily unavailable|try again|connection refused|"
                       r"unable to contact|slurm_receive_msg|Socket", re.I)


# --------------------------------------------------------------------------- SLURM queries
def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None


def job_state(job_id: str) -> str | None:
    """The job's state: from squeue while SLURM lists it, else from sacct; None when SLURM
    does not know the job (any more); UNKNOWN when neither could be asked."""
    return job_status(job_id)[0]


def job_status(job_id: str) -> tuple[str | None, str]:
    """(state, squeue's reason) of the job; the reason is "" once it left the queue."""
    out = _run(["squeue", "-h", "-j", str(job_id), "-o", "%T|%r"])
    if out is not None and out.returncode == 0:
        lines = [line for line in out.stdout.splitlines() if line.strip()]
        if lines:
            state, _, reason = lines[0].partition("|")
            reason = reason.strip()
            return state.strip(), "" if reason == "None" else reason  # squeue's "no reason"
    elif out is None or "Invalid job id" not in (out.stderr or ""):
        return UNKNOWN, ""  # the controller did not answer
    return _sacct_state(job_id), ""


def is_held(state: str | None, reason: str) -> bool:
    return state in HELD_STATES or (state == "PENDING" and bool(HELD_REASON.search(reason or "")))


def _sacct_state(job_id: str) -> str | None:
    acct = _run(["sacct", "-X", "-n", "-P", "-j", str(job_id), "-o", "State"])
    if acct is not None and acct.returncode == 0:
        states = [s.split()[0] for s in acct.stdout.splitlines() if s.strip()]
        return states[-1] if states else None
    return None


def jobs_named(name: str) -> list[tuple[str, str]]:
    """(id, state) of this user's queued jobs with this name."""
    user = os.environ.get("USER") or _whoami()
    cmd = ["squeue", "-h", "-n", name, "-o", "%i|%T"] + (["-u", user] if user else [])
    out = _run(cmd)
    if out is None or out.returncode != 0:
        return []
    rows = [line.split("|", 1) for line in out.stdout.splitlines() if "|" in line]
    return [(i.strip(), s.strip()) for i, s in rows]


def _whoami() -> str | None:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return None


# --------------------------------------------------------------------------- submission
def job_name(spec: C.RunSpec, run_dir: Path) -> str:
    """Readable and unique per run directory (two checkouts never share a job)."""
    where = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:8]
    return f"trm-{spec.data.task}-{spec.name}-{C.signature(spec)}-s{spec.train.seed}-{where}"


def slurm_parameters(res: Resources, name: str) -> dict:
    """submitit SlurmExecutor parameters (sbatch options) for one run."""
    refuse_control("job name", name)
    for key in ("slurm_partition", "slurm_account", "qos", "constraint", "gpu_type", "slurm_extra",
                "slurm_setup", "slurm_python"):  # also when Resources was built directly
        refuse_control(key, getattr(res, key))
    params: dict[str, Any] = {
        "job_name": name,
        "time": int(res.runtime),
        "nodes": 1,
        "ntasks_per_node": res.tasks,  # one task per GPU: submitit gives each its rank
        "cpus_per_task": int(res.cpus_per_task),
        "signal_delay_s": int(res.signal_delay_s),
        "stderr_to_stdout": False,
    }
    if res.mem_mb:
        params["mem"] = f"{int(res.mem_mb)}M"
    if res.gpu:
        typed = f"{res.gpu_type}:{res.gpu}" if res.gpu_type else str(res.gpu)
        if res.gpu_flag == "gres":
            params["gres"] = f"gpu:{typed}"
        else:
            params["gpus_per_node"] = typed
    for key, value in (("partition", res.slurm_partition), ("account", res.slurm_account),
                       ("qos", res.qos), ("constraint", res.constraint)):
        if value:
            params[key] = value
    if res.slurm_setup.strip():
        params["setup"] = [line for line in res.slurm_setup.splitlines() if line.strip()]
    # requeue: preempted or `scontrol requeue`d jobs come back under the same id.
    params["additional_parameters"] = {"requeue": True, **extra_parameters(res.slurm_extra)}
    return params


def sbatch_script(res: Resources, name: str, folder: Path) -> str:
    """The batch script submitit would write (for checks and --dry-run style tests)."""
    from submitit.slurm import slurm as S

    refuse_control("run directory", str(folder))

    return S._make_sbatch_string(command="python -u -m submitit.core._submit FOLDER",
                                 folder=str(folder), **slurm_parameters(res, name))


def _history(run_dir: Path, line: str) -> None:
    path = Path(run_dir) / rundir.SUBMISSIONS
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with open(path, "a") as f:
        f.write(f"{stamp} {line}\n")


def submitted_ids(run_dir: Path) -> list[str]:
    """Every job id this run directory has submitted, oldest first."""
    path = Path(run_dir) / rundir.SUBMISSIONS
    if not path.exists():
        return []
    return [p.split()[2] for p in path.read_text().splitlines() if p.split()[1:2] == ["submitted"]]


def _attach(folder: Path, job_id: str, res: Resources):
    import submitit

    return submitit.SlurmJob(folder=folder / "%j", job_id=str(job_id), tasks=list(range(res.tasks)))


def find_live_job(run_dir: Path, name: str) -> tuple[str, str] | None:
    """A pending/running job of this run: the recorded id first, then by job name."""
    job_id = read_job_id(run_dir)
    if job_id:
        state = job_state(job_id)
        if state in LIVE_STATES or state == UNKNOWN:
            return job_id, state
    for job_id, state in jobs_named(name):
        if state in LIVE_STATES:
            return job_id, state
    return None


def read_job_id(run_dir: Path) -> str | None:
    try:
        return (Path(run_dir) / rundir.JOB_ID).read_text().strip() or None
    except OSError:
        return None


def _write_job_id(run_dir: Path, job_id: str) -> None:
    atomic_write_text(Path(run_dir) / rundir.JOB_ID, f"{job_id}\n")


def recover_result(spec: C.RunSpec, run_dir: Path) -> dict | None:
    """The recorded job finished while no live Snakemake waited for it, and then
    `--rerun-incomplete` removed its metrics.json: rewrite it from the job's own JSON record
    (submitit/outcome.json) instead of submitting a second job. Same dict, same writer, so
    the same bytes. Not when a launcher delivered the result to a live Snakemake ("finished"
    in submissions.log): then metrics.json was removed on purpose (`snakemake -f`), and a new
    job re-evaluates from the final checkpoint. Failed outcomes are not recovered: a plain
    re-run is how a failed cell is retried."""
    id_file = run_dir / rundir.JOB_ID
    if not id_file.exists():
        return None
    job_id = id_file.read_text().strip()
    log = run_dir / rundir.SUBMISSIONS
    history = log.read_text().split("\n") if log.exists() else []
    if any(line.split()[1:3] == ["finished", job_id] for line in history if line):
        return None  # a launcher delivered it: this is a deliberate re-run (-f, -R): submit
    metrics = rundir.read_outcome(run_dir, job_id)
    if (metrics is None or metrics.get("status") not in ("ok", "diverged")
            or metrics.get("sig") != C.signature(spec) or metrics.get("seed") != spec.train.seed):
        return None
    rundir.write_metrics(run_dir, metrics)
    _history(run_dir, f"recovered {job_id}")
    print(f"job {job_id} had finished: metrics.json rewritten from its record "
          f"({run_dir / rundir.OUTCOME})", flush=True)
    return metrics


# ------------------------------------------------- did our Snakemake see the result?
def _proc_stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a process, from /proc (Linux); None when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[19]  # fields 4 and 22 of proc(5)


def snakemake_ancestor(max_depth: int = 8) -> tuple[int, str] | None:
    """(pid, start time) of the Snakemake process this launcher runs under, if any.
    The launcher is Snakemake's grandchild (through the rule's shell); when Snakemake alone is
    killed, the shell and the launcher live on as orphans."""
    pid = os.getppid()
    for _ in range(max_depth):
        if pid <= 1:
            return None
        st = _proc_stat(pid)
        if st is None:
            return None
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        # `snakemake ...`, `python -m snakemake ...` or `.../bin/snakemake ...`; not a shell
        # whose command line merely mentions a path with "snakemake" in it.
        if any(Path(a).name == "snakemake" for a in argv[:2]) or argv[1:3] == ["-m", "snakemake"]:
            return pid, st[1]
        pid = st[0]
    return None


def still_alive(proc: tuple[int, str] | None) -> bool:
    """True when there is no Snakemake to deliver to (a hand-run launcher) or it still runs."""
    if proc is None:
        return True
    st = _proc_stat(proc[0])
    return st is not None and st[1] == proc[1]


def submit_slurm(job, folder: Path, res: Resources, name: str):
    import submitit

    refuse_control("run directory", str(folder))  # its path goes into #SBATCH --output

    ex = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=int(res.max_num_timeout),
                                python=res.slurm_python or None)
    ex.update_parameters(**slurm_parameters(res, name))
    # sbatch exports this environment to the job. Snakemake gives a `threads: 0` job
    # OMP_NUM_THREADS=0 (invalid): the job gets its own CPU count instead.
    for var in THREAD_VARS:
        os.environ[var] = str(res.cpus_per_task)
    last = None
    for attempt in range(4):
        try:
            with submitit.helpers.clean_env():  # no SLURM_* leaking in from an enclosing job
                return ex.submit(job)
        except Exception as e:  # noqa: BLE001 - sbatch failures come in several types
            last = e
            if not TRANSIENT.search(str(e)) or attempt == 3:
                break
            time.sleep(5 * (attempt + 1))
            found = jobs_named(name)  # sbatch may have succeeded despite the error
            live = [j for j, s in found if s in LIVE_STATES]
            if live:
                return _attach(folder, live[0], res)
    raise RuntimeError(f"sbatch failed for {name}: {str(last).strip()[-2000:]}")


def run_slurm(job, spec: C.RunSpec, run_dir: Path, res: Resources) -> dict:
    if shutil.which("sbatch") is None:
        raise C.SpecError("launcher slurm: 'sbatch' is not on PATH (run Snakemake on a SLURM "
                          "login node, or use --config launcher=local)")
    folder = run_dir / rundir.SUBMITIT
    folder.mkdir(parents=True, exist_ok=True)
    name = job_name(spec, run_dir)
    waiter_of = snakemake_ancestor()
    live = find_live_job(run_dir, name)
    recovered = None if live is not None else recover_result(spec, run_dir)
    if recovered is not None:
        if still_alive(waiter_of):  # delivered now: a later -f is a deliberate re-run
            _history(run_dir, f"finished {read_job_id(run_dir)} {recovered.get('status')}")
        return recovered
    if live is not None:
        job_id, state = live
        print(f"re-attaching to SLURM job {job_id} ({state}); not submitting", flush=True)
        _history(run_dir, f"attached {job_id} {state}")
        _write_job_id(run_dir, job_id)
        sub = _attach(folder, job_id, res)
    else:
        sub = submit_slurm(job, folder, res, name)
        _write_job_id(run_dir, str(sub.job_id))
        _history(run_dir, f"submitted {sub.job_id} {name}")
        print(f"submitted SLURM job {sub.job_id} ({name})", flush=True)
    print(f"job log: {sub.paths.stdout} / {sub.paths.stderr}", flush=True)
    try:
        metrics = wait(sub, run_dir, "slurm", res.poll_s, time.time() + 60 * res.deadline_min(),
                       held_grace_s=60 * res.held_grace_min)
    except JobLost as e:
        _history(run_dir, f"{'held' if isinstance(e, JobHeld) else 'lost'} {sub.job_id}")
        raise
    # "finished" only when a live Snakemake gets this result; an orphaned launcher (its
    # Snakemake was killed) says so, and the restarted Snakemake's launcher recovers it.
    word = "finished" if still_alive(waiter_of) else "finished-undelivered"
    _history(run_dir, f"{word} {sub.job_id} {metrics.get('status')}")
    return metrics


# --------------------------------------------------------------------------- local
def run_local(job, spec: C.RunSpec, run_dir: Path, res: Resources) -> dict:
    """submitit LocalExecutor: the same job object and requeue logic, in a subprocess of
    this launcher (no re-attachment: stopping the launcher stops the run; a re-run resumes
    from the checkpoint)."""
    import submitit

    folder = run_dir / rundir.SUBMITIT
    ex = submitit.LocalExecutor(folder=folder / "%j", max_num_timeout=int(res.max_num_timeout),
                                python=res.slurm_python or None)
    ex.update_parameters(timeout_min=int(res.runtime), gpus_per_node=int(res.gpu),
                         tasks_per_node=res.tasks, signal_delay_s=int(res.signal_delay_s))
    sub = ex.submit(job)
    _history(run_dir, f"local {sub.job_id}")
    print(f"started local job {sub.job_id}; log: {sub.paths.stdout}", flush=True)

    def stop(signum, frame):  # Snakemake stopped: do not leave an orphan training
        sub.cancel(check=False)
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return wait(sub, run_dir, "local", min(res.poll_s, 1.0), time.time() + 60 * res.deadline_min())
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------- waiting
def _log_tail(sub, n: int = 3000) -> str:
    text = ""
    for path in (sub.paths.stderr, sub.paths.stdout):
        try:
            text += Path(path).read_text(errors="replace")[-n:]
        except OSError:
            pass
    return text[-n:]


def wait(sub, run_dir: Path, cluster: str, poll_s: float, deadline: float,
         held_grace_s: float = 0.0) -> dict:
    """Until metrics.json exists, the job ends without one (JobFailed), is lost or held too
    long (JobLost, JobHeld), or the deadline passes (TimeoutError). Never cancels the job.
    The job's end is seen from its result pickle's existence (never read: no unpickling)."""
    grace = max(MIN_GRACE_S, 3 * poll_s)  # for a result file to show up after the job left
    left_at = ended_at = held_since = None
    held_reported = False
    last = None
    result_pickle = Path(str(sub.task(0).paths.result_pickle if sub.num_tasks > 1 else sub.paths.result_pickle))
    while True:
        metrics = rundir.finished(run_dir)
        if metrics is not None:
            return metrics
        if result_pickle.exists() or (cluster == "local" and sub.done()):
            # The job ended; its metrics.json (or its outcome record) may lag on a shared
            # filesystem. Without either, it raised outside the training code.
            metrics = rundir.read_outcome(run_dir, sub.job_id) if cluster == "slurm" else None
            if metrics is not None:
                if rundir.finished(run_dir) is None:  # same dict, same writer: the job's bytes
                    rundir.write_metrics(run_dir, metrics)
                return metrics
            ended_at = ended_at or time.time()
            if time.time() - ended_at > (grace if cluster == "slurm" else 1.0):
                raise JobFailed(f"job {sub.job_id} ended without writing metrics.json; its log "
                                f"ends:\n{_log_tail(sub)}")
        elif cluster == "slurm":
            state, reason = job_status(sub.job_id)
            if (state, reason) != last:
                print(f"job {sub.job_id}: {state}{f' ({reason})' if reason else ''}", flush=True)
                last = (state, reason)
            if is_held(state, reason):
                held_since = held_since or time.time()
                held_for = time.time() - held_since
                delay = BEGIN_TIME_REPORT_S if "begintime" in reason.lower() else HELD_REPORT_S
                if not held_reported and held_for >= min(delay, held_grace_s or delay):
                    held_reported = True
                    give_up = (f"recorded failed after {held_grace_s / 60:g} min held"
                               if held_grace_s else "waiting for it (held_grace_min=0)")
                    msg = (f"WARNING: SLURM job {sub.job_id} is held ({reason or state}) and will "
                           f"not start by itself; free it with: scontrol release {sub.job_id}  "
                           f"({give_up})")
                    print(msg, flush=True)
                    print(msg, file=sys.stderr, flush=True)
                if held_grace_s and held_for > held_grace_s:
                    raise JobHeld(
                        f"SLURM job {sub.job_id} held ({reason or state}) for {held_for / 60:.1f} "
                        f"min; free it with `scontrol release {sub.job_id}`, then re-run (the run "
                        "re-attaches to it), or scancel it and re-run to submit afresh")
            else:
                held_since, held_reported = None, False
            if state in LIVE_STATES or state == UNKNOWN:
                left_at = None
            else:
                left_at = left_at or time.time()
                if time.time() - left_at > grace:
                    raise JobLost(
                        f"SLURM job {sub.job_id} ended ({state or 'gone from the queue'}) without a "
                        f"result; re-run to resume from the checkpoint. Log tail:\n{_log_tail(sub)}")
        if time.time() > deadline:
            raise TimeoutError(f"gave up waiting for job {sub.job_id} (deadline passed); it was not "
                               "cancelled: re-run Snakemake to re-attach")
        time.sleep(poll_s)


def run_submitit(job, spec: C.RunSpec, run_dir: Path, launcher: str, res: Resources) -> dict:
    run_dir = Path(run_dir)
    if launcher == "slurm":
        return run_slurm(job, spec, run_dir, res)
    return run_local(job, spec, run_dir, res)
