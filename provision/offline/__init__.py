"""Offline stage, beside the pipeline: everything a target downloads, into a bundle, onto a machine.

    download.py   the one download core: streaming sha256, .part + rename, Range resume, retries, stalls
    stream.py     its inner loop: one body into one file (splice / read1), hashed in a second thread
    hfhub.py      the two Hub routes a mirror needs (file list with hashes, file URL)
    artifacts.py  everything a target downloads, as one flat list (pure)
    bundle.py     the content-addressed bundle directory and its manifest
    mirror.py     spec + lockfile -> bundle entries -> fetched blobs
    seed.py       a verified bundle -> the places huggingface_hub, torch.hub, rembg and apply look
"""
