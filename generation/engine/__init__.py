"""The engine behind one small interface.

The rest of the service asks for "a stream of text deltas for this prompt on this
model" (`EngineCache.get`, then the worker's `stream`) and never touches `mistralrs`
types. Each loaded model runs in a worker process of its own, so that a load freezes
nothing in the web process, unloading gives the memory back, and a crash ends only that
model's streams:

- types: the values both sides exchange (text deltas, the end of a generation; the
  configuration and the sampling parameters are the catalog's EngineConfig and SamplingParams);
- cache: the process-wide cache of workers (start, LRU stop, restart, load failures);
- channel: one worker seen from the web process (its requests over the channel, streams, death);
- streams: a generation's events, from the channel's reader thread to the event loop, in batches;
- process: a worker's process (start, stop, kill, reap); logs: what it writes, logged;
- protocol: the messages on the channel; tracing: the trace context they carry, and the
  spans of a generation's phases in its worker (and the OTLP exporter of both processes);
- worker: the worker process;
- runner: the engine in the process that imports mistral.rs, with its workarounds
  (the worker's, and the benchmark's in-process target);
- model_files, gguf_file, gguf_tokenizer, files: the model files on disk (the bundled GGUFs,
  their headers, the exact tokenizer.json built for each GGUF), also used to build the image.

The web process never imports `runner` or `worker`. This package's own module imports
nothing, so that the image's build can use `model_files` alone.
"""
