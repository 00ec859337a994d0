"""The registry's domain model. PostgreSQL is the source of truth; the match index is derived.

A person opens a *case* and, under a *consent record*, registers *images*; each image holds the
PDQ *hashes* of its eight dihedral variants (models.cases). *Partners* use the registry with
their *keys* (models.partners). Every addition and withdrawal is appended to the *change*
sequence, which drives the freshness of every process's index, the partners' sync feeds and
webhooks (models.distribution). Reviewers keep the list honest (models.moderation), and every
write that matters is on the *audit* record (models.audit).
"""

from registry.models.audit import AuditEvent
from registry.models.cases import Case, ConsentRecord, ImageHash, RegisteredImage
from registry.models.distribution import (
    Change,
    Disclosure,
    Feedback,
    WebhookDelivery,
    WithdrawalAck,
)
from registry.models.idempotency import IdempotencyRecord
from registry.models.moderation import (
    AllowListedHash,
    ProbingAlert,
    ReviewDecision,
    ReviewQueueImage,
)
from registry.models.partners import MatchCall, Partner, PartnerKey

__all__ = [
    "AllowListedHash",
    "AuditEvent",
    "Case",
    "Change",
    "ConsentRecord",
    "Disclosure",
    "Feedback",
    "IdempotencyRecord",
    "ImageHash",
    "MatchCall",
    "Partner",
    "PartnerKey",
    "ProbingAlert",
    "RegisteredImage",
    "ReviewDecision",
    "ReviewQueueImage",
    "WebhookDelivery",
    "WithdrawalAck",
]
