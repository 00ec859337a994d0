"""Every write of the registry's domain, one module per area; the names callers use are here.

Each service is one transaction: it writes all its rows or none, appends to the change sequence
(services.changes) and to the audit record (services.audit), and enqueues follow-up work only
once the transaction has committed. Modules of this package import each other by module, never
through this one.
"""

from registry.services.audit import audit_event_record
from registry.services.cases import (
    Attestations,
    CaseCreated,
    case_add_images,
    case_check_secret,
    case_check_secret_limited,
    case_create,
    case_withdraw,
)
from registry.services.changes import changes_append
from registry.services.distribution import (
    WithdrawalAcks,
    disclosure_record,
    feedback_record,
    withdrawal_ack_record,
)
from registry.services.matches import partner_match
from registry.services.partners import (
    KeyIssued,
    partner_create,
    partner_key_issue,
    partner_key_revoke,
    partner_key_rotate,
    partner_save,
)
from registry.services.review import image_submit_by_partner

__all__ = [
    "Attestations",
    "CaseCreated",
    "KeyIssued",
    "WithdrawalAcks",
    "audit_event_record",
    "case_add_images",
    "case_check_secret",
    "case_check_secret_limited",
    "case_create",
    "case_withdraw",
    "changes_append",
    "disclosure_record",
    "feedback_record",
    "image_submit_by_partner",
    "partner_create",
    "partner_key_issue",
    "partner_key_revoke",
    "partner_key_rotate",
    "partner_match",
    "partner_save",
    "withdrawal_ack_record",
]
