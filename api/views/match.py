"""``POST /api/v1/match``: is this image registered? Checked before publishing or editing it."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.authentication import PartnerPrincipal, require_scope
from api.errors import ApiError
from api.fields import PARTNER_ERRORS, HashTextField, WholeNumberField, check_batch
from registry.derivatives import MAX_QUERY_VIEWS, QUERY_VIEW_NAMES, REFRAMED, REGIONS, WHOLE
from registry.exceptions import RateLimited
from registry.match_ids import match_id_encode
from registry.matching import probing
from registry.models import MatchCall
from registry.pdq import MATCH_DISTANCE, HashError, InvalidHash, parse_hash
from registry.selectors.matches import VIDEO, ImageMatch
from registry.selectors.video_matches import PHOTO, VideoMatch
from registry.services.matches import partner_match, partner_match_with_videos
from registry.videos import MAX_FRAMES_PER_VIDEO, Frame, matchable_frames, parse_frames

MAX_HASHES_PER_MATCH = 1000
# Videos in one call: each is at most registry.videos.MAX_FRAMES_PER_VIDEO frames, so that five
# of the longest fit in the 1 MiB body (DATA_UPLOAD_MAX_MEMORY_SIZE, nginx client_max_body_size).
MAX_VIDEOS_PER_MATCH = 5


_HASH_TEXT = re.compile(r"[0-9A-Fa-f]{64}")
# The purposes, once: MatchCall.Purpose.values builds a new list on every read.
_PURPOSES = frozenset(MatchCall.Purpose.values)


def _match_input_plain(data: Any) -> dict[str, Any] | None:
    """The input of a plainly well-formed match call, as MatchApi.InputSerializer validates it.

    None for anything else, which the serializer then checks and explains. Building that
    serializer costs more than the rest of a single-hash call's parsing (tests/load/); this
    accepts only what it would accept unchanged (64 hexadecimal digits, a purpose, a whole
    max_distance), so every refusal still comes from the serializer, word for word.
    """
    if type(data) is not dict or "views" in data or "videos" in data:
        return None
    hashes = data.get("hashes")
    purpose = data.get("purpose")
    distance = data.get("max_distance", MATCH_DISTANCE)
    if not (
        type(hashes) is list
        and hashes
        and all(type(text) is str and _HASH_TEXT.fullmatch(text) for text in hashes)
        and type(purpose) is str
        and purpose in _PURPOSES
        and type(distance) is int
        and 0 <= distance <= MATCH_DISTANCE
    ):
        return None
    return {"hashes": hashes, "purpose": purpose, "max_distance": distance}


def _views_parse(value: object, uploads: int) -> list[dict[str, bytes]] | None:
    """The derived views of each upload (registry.derivatives.query_views), or None.

    ``views`` is absent, or a list as long as ``hashes`` of objects (or nulls) naming a query
    view and its hash. A view whose hash no real image has (a flat crop) is left out; a view
    that is not a hash at all refuses the request, as a malformed hash does.
    """
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != uploads:
        raise ApiError(
            400,
            "views_invalid",
            "views is a list as long as hashes, of objects of view name to hash (or null).",
        )
    parsed: list[dict[str, bytes]] = []
    for index, item in enumerate(value):
        if item is None:
            parsed.append({})
            continue
        if not isinstance(item, dict) or len(item) > MAX_QUERY_VIEWS:
            raise ApiError(
                400,
                "views_invalid",
                f"Each item of views is an object of at most {MAX_QUERY_VIEWS} views, or null.",
                {"index": index, "max_views": MAX_QUERY_VIEWS},
            )
        upload: dict[str, bytes] = {}
        for name, text in item.items():
            if name not in _QUERY_VIEWS:
                raise ApiError(
                    400,
                    "view_unknown",
                    "views names a view the registry does not know (docs/partners.md).",
                    {"index": index, "view": str(name)[:16]},
                )
            try:
                upload[name] = parse_hash(text)
            except InvalidHash as error:
                if error.code == HashError.MALFORMED:
                    raise InvalidHash(error.code, index=index, view=name) from None
        parsed.append(upload)
    return parsed


_QUERY_VIEWS = frozenset(QUERY_VIEW_NAMES)


def _videos_parse(value: object) -> list[list[Frame]]:
    """The query videos: a list of at most MAX_VIDEOS_PER_MATCH objects, each with its vPDQ
    frame list (``frames``: registry.videos.parse_frames); anything else in them is ignored."""
    if not isinstance(value, list) or not value:
        raise ApiError(
            400, "videos_invalid", "videos is a list of objects, each with its frames (vPDQ)."
        )
    parsed: list[list[Frame]] = []
    for position, item in enumerate(value):
        if not isinstance(item, dict):
            raise ApiError(
                400,
                "videos_invalid",
                "videos is a list of objects, each with its frames (vPDQ).",
                {"video": position},
            )
        parsed.append(parse_frames(item.get("frames"), video=position, limit=MAX_FRAMES_PER_VIDEO))
    # Refused for their number only once every one is well formed (a 400 comes first).
    if len(value) > MAX_VIDEOS_PER_MATCH:
        raise ApiError(
            413,
            "too_many_videos",
            f"At most {MAX_VIDEOS_PER_MATCH} videos in one request.",
            {"max_videos": MAX_VIDEOS_PER_MATCH},
        )
    return parsed


class MatchApi(APIView):
    """Match up to 1,000 hashes before publishing an image or running an AI edit on it."""

    permission_classes = [require_scope("match")]

    class InputSerializer(serializers.Serializer[Any]):
        hashes = serializers.ListField(child=HashTextField(), allow_empty=False)
        views = serializers.ListField(
            child=serializers.DictField(child=HashTextField(), allow_null=True),
            required=False,
            help_text=(
                "For each hash, the upload's derived views (registry.derivatives.query_views:"
                " trimmed borders, a mirror, rotations undone, edge cuts, masked regions), as an"
                " object of view name to hash, or null. Each hash and view counts against the"
                " 1,000 a call and the budget."
            ),
        )
        purpose = serializers.ChoiceField(choices=MatchCall.Purpose.choices)
        max_distance = WholeNumberField(min_value=0, max_value=31, default=31)

    class FrameSerializer(serializers.Serializer[Any]):
        hash = HashTextField()
        quality = WholeNumberField(min_value=0, max_value=100)
        timestamp = serializers.FloatField(min_value=0, help_text="Seconds from the start.")

    class VideoSerializer(serializers.Serializer[Any]):
        frames = serializers.ListField(
            child=serializers.DictField(),
            help_text=(
                "The upload's vPDQ frame list (one frame a second, as vpdq.computeHash gives it;"
                " docs/videos.md). Each frame counts against the budget as a hash."
            ),
        )

    class RegionsSerializer(serializers.Serializer[Any]):
        matched = serializers.IntegerField(
            help_text="The photo's masked views and guard tiles that agreed."
        )
        of = serializers.IntegerField(help_text="The masked views and guard tiles the photo has.")

    class MatchSerializer(serializers.Serializer[Any]):
        match_id = serializers.CharField(help_text="Opaque; stable for you, unknown to others.")
        scope = serializers.ChoiceField(choices=["intimate", "no_sexual_edit"])
        minor_depicted = serializers.BooleanField()
        status = serializers.ChoiceField(choices=["active", "disputed"])
        kind = serializers.ChoiceField(
            choices=[WHOLE, REFRAMED, REGIONS, VIDEO],
            help_text=(
                "What matched: whole (the photo itself), reframed (a crop, border, caption cut "
                "or small rotation of it), regions (its untouched regions around an edited "
                "one) or video (a frame of a registered video). Route regions matches of "
                "no_sexual_edit photos to review."
            ),
        )
        timestamp = serializers.FloatField(
            required=False, help_text="For a video match: the matching frame's time, seconds."
        )

    class VideoMatchSerializer(serializers.Serializer[Any]):
        match_id = serializers.CharField(help_text="Opaque; stable for you, unknown to others.")
        scope = serializers.ChoiceField(choices=["intimate", "no_sexual_edit"])
        minor_depicted = serializers.BooleanField()
        status = serializers.ChoiceField(choices=["active", "disputed"])
        kind = serializers.ChoiceField(
            choices=[VIDEO, PHOTO],
            help_text=(
                "video: a registered video, by the vPDQ rule (at least 80% of the upload's "
                "frames match it); photo: a registered photo seen in a frame of the upload."
            ),
        )
        timestamp = serializers.FloatField(
            help_text=(
                "video: the registered frame behind the closest pair; photo: the upload's "
                "frame, in seconds."
            )
        )
        query_match_percent = serializers.FloatField(
            required=False, help_text="video: the share of the upload's frames that matched."
        )
        registered_match_percent = serializers.FloatField(
            required=False, help_text="video: the share of the registered video's frames matched."
        )

    class VideoResultSerializer(serializers.Serializer[Any]):
        matches = serializers.ListField(child=serializers.DictField())

    class ResultErrorSerializer(serializers.Serializer[Any]):
        code = serializers.ChoiceField(
            choices=[HashError.ALL_ZERO, HashError.TOO_FEW_BITS, HashError.TOO_MANY_BITS]
        )
        message = serializers.CharField()

    class ResultSerializer(serializers.Serializer[Any]):
        matches = serializers.ListField(child=serializers.DictField())

    class OutputSerializer(serializers.Serializer[Any]):
        results = serializers.ListField(child=serializers.DictField())
        video_results = serializers.ListField(
            child=serializers.DictField(),
            required=False,
            help_text="One per video of the request, in order (present when videos were sent).",
        )

    # The schema names the nested shapes precisely.
    ResultSerializer._declared_fields["matches"] = MatchSerializer(many=True)
    ResultSerializer._declared_fields["error"] = ResultErrorSerializer(
        required=False,
        help_text=(
            "Present when this hash is well formed but no real photo's (that of a flat or blank "
            "image): it is not matched, and the other hashes of the call are."
        ),
    )
    OutputSerializer._declared_fields["results"] = ResultSerializer(many=True)
    VideoResultSerializer._declared_fields["matches"] = VideoMatchSerializer(many=True)
    OutputSerializer._declared_fields["video_results"] = VideoResultSerializer(
        many=True, required=False
    )
    VideoSerializer._declared_fields["frames"] = FrameSerializer(many=True)
    InputSerializer._declared_fields["videos"] = VideoSerializer(
        many=True,
        required=False,
        help_text=(
            f"Up to {MAX_VIDEOS_PER_MATCH} uploaded videos, each its vPDQ frame list; answered in"
            " video_results. hashes may then be left out."
        ),
    )

    class VideoInputSerializer(InputSerializer):
        hashes = serializers.ListField(child=HashTextField(), required=False, default=list)

    MatchSerializer._declared_fields["regions"] = RegionsSerializer(
        required=False, help_text="Present for a regions match."
    )

    @extend_schema(
        operation_id="match",
        request=InputSerializer,
        responses={200: OutputSerializer, **PARTNER_ERRORS},
    )
    def post(self, request: Request) -> Response:
        check_batch(request.data, "hashes", MAX_HASHES_PER_MATCH)
        body = request.data
        videos: list[list[Frame]] | None = None
        if isinstance(body, dict) and "videos" in body:
            videos = _videos_parse(body["videos"])
            body = {name: value for name, value in body.items() if name != "videos"}
            body.setdefault("hashes", [])
        data = None if videos is not None else _match_input_plain(body)
        views: list[dict[str, bytes]] | None = None
        if data is None:
            raw_views = body.get("views") if isinstance(body, dict) else None
            if isinstance(body, dict) and "views" in body:
                body = {name: value for name, value in body.items() if name != "views"}
            serializer_class = self.InputSerializer if videos is None else self.VideoInputSerializer
            serializer = serializer_class(data=body)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            views = _views_parse(raw_views, len(data["hashes"]))
            total = len(data["hashes"]) + sum(len(upload) for upload in views or ())
            if total > MAX_HASHES_PER_MATCH:
                raise ApiError(
                    413,
                    "too_many_hashes",
                    f"At most {MAX_HASHES_PER_MATCH} hashes in one request, views included.",
                    {"max_hashes": MAX_HASHES_PER_MATCH},
                )
        hashes: list[bytes] = []
        # A hash of a flat or degenerate image is answered on its own, not by failing the batch;
        # text that is no hash at all is a client bug and still refuses the request.
        refused: dict[int, InvalidHash] = {}
        for index, text in enumerate(data["hashes"]):
            try:
                hashes.append(parse_hash(text))
            except InvalidHash as error:
                if error.code == HashError.MALFORMED:
                    raise InvalidHash(error.code, index=index) from None
                refused[index] = error
        principal = request.user
        assert isinstance(principal, PartnerPrincipal)
        # Below the threshold, the distance would be an oracle that rebuilds a registered hash
        # (docs/threat-model.md); only keys that receive raw hashes anyway may lower it.
        if data["max_distance"] != MATCH_DISTANCE and "sync" not in principal.key.scopes:
            raise ApiError(
                403,
                "max_distance_not_allowed",
                "Only a key with the sync scope may lower max_distance.",
                {"max_distance": MATCH_DISTANCE},
            )
        if views is not None and refused:
            # Views follow their upload; a refused upload's hash is answered alone, unmatched.
            views = [upload for index, upload in enumerate(views) if index not in refused]
        video_results: list[list[VideoMatch]] | None = None
        if videos is None:
            results = partner_match(
                key=principal.key,
                hashes=hashes,
                purpose=data["purpose"],
                max_distance=data["max_distance"],
                views=views,
            )
        else:
            results, video_results = partner_match_with_videos(
                key=principal.key,
                hashes=hashes,
                videos=videos,
                purpose=data["purpose"],
                max_distance=data["max_distance"],
                views=views,
            )
        if probing.match_observe(key=principal.key, hashes=hashes, results=results, views=views):
            # The call that opens an alert is not answered: what it asked stays unknown.
            raise RateLimited(retry_after=60, details={"reason": "probing_alert"})
        if video_results is not None:
            identities, frames = _watched_videos(videos or [])
            if probing.match_observe(
                key=principal.key, hashes=identities, results=video_results, views=frames
            ):
                raise RateLimited(retry_after=60, details={"reason": "probing_alert"})
        partner_id = principal.partner.pk
        answers: list[dict[str, Any]] = [
            {"matches": [_match_answer(match, partner_id) for match in matches]}
            for matches in results
        ]
        for index, error in sorted(refused.items()):  # ascending, so each lands at its index
            answers.insert(
                index, {"matches": [], "error": {"code": error.code, "message": error.message}}
            )
        answer: dict[str, Any] = {"results": answers}
        if video_results is not None:
            answer["video_results"] = [
                {"matches": [_video_match_answer(match, partner_id) for match in matches]}
                for matches in video_results
            ]
        return Response(answer)


def _watched_videos(videos: list[list[Frame]]) -> tuple[list[bytes], list[dict[str, bytes]]]:
    """What the probing watch sees of the query videos: each video is one upload whose frames
    are its views (so a video's own frames are never close pairs of each other, while frames
    close to other calls' queries are), named by a digest of its whole frame list (so that a
    prober changing any frame asks a new question about the image it matches)."""
    identities: list[bytes] = []
    frames: list[dict[str, bytes]] = []
    for video in videos:
        values = [frame.value for frame in matchable_frames(video)]
        identities.append(hashlib.sha256(b"".join(values)).digest())
        frames.append({str(index): value for index, value in enumerate(values)})
    return identities, frames


def _answer_head(match: ImageMatch | VideoMatch, partner_id: int) -> dict[str, Any]:
    """What every match says of the registered item it names (never its hashes)."""
    return {
        "match_id": match_id_encode(image_id=match.image_id, partner_id=partner_id),
        "scope": match.scope,
        "minor_depicted": match.minor_depicted,
        "status": match.status,
        "kind": match.kind,
    }


def _match_answer(match: ImageMatch, partner_id: int) -> dict[str, Any]:
    answer = _answer_head(match, partner_id)
    if match.kind == REGIONS:
        answer["regions"] = {"matched": match.regions, "of": match.regions_of}
    if match.timestamp is not None:
        answer["timestamp"] = match.timestamp
    return answer


def _video_match_answer(match: VideoMatch, partner_id: int) -> dict[str, Any]:
    answer = _answer_head(match, partner_id)
    answer["timestamp"] = match.timestamp
    if match.kind == VIDEO:
        answer["query_match_percent"] = match.query_match_percent
        answer["registered_match_percent"] = match.registered_match_percent
    return answer
