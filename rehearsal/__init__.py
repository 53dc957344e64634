"""The deploy rehearsal: the real templates deployed into ministack with IAM enforced.

``make rehearse`` runs ``python -m rehearsal`` (docs/rehearsal.md).
"""
