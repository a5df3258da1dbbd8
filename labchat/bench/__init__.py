"""`labchat-bench`: throughput, latency and cost of a labchat server, measured on this machine.

Modules, each named after what it holds:

- cli.py          flags, the overall time bound, the Rich table / JSON output
- runner.py       the modes (fixed, ramp, idle, curve, tui) as sequences of steps
- server_proc.py  the relay server in its own process, so its CPU and memory are measured apart
- load.py         simulated clients (real `ChatClient`s) in worker processes
- stats.py        the latency histogram and the per-step result records
- procinfo.py     CPU time and memory of a process from /proc
- ceiling.py      the machine's raw ceiling: a blocking loop of 200-byte sendto on loopback
- tui_latency.py  key-to-screen delay of the Textual app while a stream of messages arrives
"""
