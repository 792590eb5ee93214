"""lipdub.data: one speaker's long videos -> a clean fine-tuning set (cut, filter, prepare, stats).

    cut      clips at VAD silences, 25 fps / 16 kHz, frame-exact   -> clips/<stem>-<sha8>/<00000>.mp4|.wav|.json
    filter   keep clips where the target (reference photos) is on screen and talking -> kept/ + report.json
    prepare  tracked face crops, exact audio, mel, split by source (or by time in one source) -> what train reads
    stats    hours, clips, faces per frame, sync offsets

Every step skips work whose recorded input hash and settings match, runs on local processes or Ray
(`runner.run_tasks`), and never modifies its inputs.
"""
