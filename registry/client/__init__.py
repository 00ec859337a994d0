"""The partner client: hash photos with pdqhash and videos with vPDQ locally, call the registry.
Django-free.

Installed as the ``rempart`` command::

    rempart hash photo.jpg video.mp4
    rempart match photo.jpg video.mp4 --key rmp_... [--purpose ai_edit]
    rempart submit photo.jpg video.mp4 --scope intimate --attest [--minor] [--language fr]

Nothing but hashes leaves the machine: photos are decoded and hashed here, by the same rules as
the registry's pages (registry.pixels: EXIF orientation, transparency over white, 16-bit to its
high byte), and only their PDQ hashes and quality are sent (``images``). Videos are hashed by
Meta's reference vPDQ hasher, the ``video`` extra (``pip install 'rempart[video]'``), imported
only when a video is hashed (``videos``); a video sends its frame list, its MD5 and its length.

A partner matching locally from the sync feed decides with registry.derivatives.decide (photos)
and registry.videos.video_decide (videos), the registry's own rules.
"""

from registry.client.cli import build_parser, is_video, main
from registry.client.http import DEFAULT_URL, MAX_HASHES_PER_CALL, Client, RegistryError
from registry.client.images import ImageHashes, _sendable, hash_file
from registry.client.videos import VideoHashes, VideoUnavailable, hash_video

__all__ = [
    "DEFAULT_URL",
    "MAX_HASHES_PER_CALL",
    "Client",
    "ImageHashes",
    "RegistryError",
    "VideoHashes",
    "VideoUnavailable",
    "_sendable",
    "build_parser",
    "hash_file",
    "hash_video",
    "is_video",
    "main",
]
