#!/usr/bin/python3
"""PyTorch's steps in lockstep with linfuse's (train_step_bench --lockstep): torch_ref.py's own bench(mode, steps),
or bench/torch_eval.py's for evaluation, with the clock its loop reads replaced, so that each step waits for a line
on stdin before it starts and prints its seconds when it ends. The other program runs its step in between; two
programs timed step by step, alternating, see the same minute of a shared machine. After the last step it prints its
peak memory and how many cores its steps kept busy (CPU time / wall time).
Usage: torch_lockstep.py PATH/torch_ref.py PATH/torch_eval.py THREADS MODE STEPS   (run with /usr/bin/python3)
Relies on bench() reading time.perf_counter() exactly twice per step: at its start and at its end.
"""
import importlib.util, sys, time


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LockstepClock:
    """time's stand-in for bench(): the first read of a step waits for the go line, the second reports the step."""

    def __init__(self):
        self.started = None
        self.cpu_started = 0.0
        self.wall = self.cpu = 0.0   # summed over the steps: cpu / wall is how many cores the steps kept busy

    def perf_counter(self):
        if self.started is None:
            if not sys.stdin.readline():   # the peer has gone: stop
                sys.exit(0)
            self.cpu_started = time.process_time()
            self.started = time.perf_counter()
            return self.started
        ended = time.perf_counter()
        self.wall += ended - self.started
        self.cpu += time.process_time() - self.cpu_started
        print(f"{ended - self.started:.6f}", flush=True)
        self.started = None
        return ended


def main():
    torch_ref_path, torch_eval_path, threads, mode, steps = sys.argv[1:6]
    ref = load("torch_ref", torch_ref_path)
    ref.torch.set_num_threads(int(threads))
    module = ref
    if mode.startswith("eval"):
        module = load("torch_eval", torch_eval_path)
        module.ref = ref
    clock = module.time = LockstepClock()
    module.bench(mode, int(steps))
    hwm_kb = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(f"hwm_kb={hwm_kb} cores={clock.cpu / max(clock.wall, 1e-9):.3f}", flush=True)


if __name__ == "__main__":
    main()
