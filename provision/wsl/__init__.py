"""WSL2: the .wslconfig that keeps nvcc jobs from being OOM-killed in the VM.

    config.py  pure text functions: size it for a target, merge it into a file, lint it
    file.py    the effects: find the Windows profile, back up, write, show the diff
"""
