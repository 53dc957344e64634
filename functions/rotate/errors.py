"""Named errors. Step Functions sees the class name as the error, so ASL Retry/Catch match on it.

No message ever contains a token value: fingerprints only.
"""


class RotationError(Exception):
    """Base class of every error a rotation step raises on purpose."""


class InvalidInputError(RotationError):
    """The execution input is not one of the documented shapes. Nothing was changed."""


class SettingsError(RotationError):
    """The rotate function's deployment settings are incomplete or malformed."""


class RotationInProgressError(RotationError):
    """Another execution holds the target's lock."""


class LockLostError(RotationError):
    """This execution no longer holds the target's lock (a revoke preempted it): it writes
    nothing more. Not retried."""


class StoreUnavailableError(RotationError):
    """SSM could not be read or written (throttled, unreachable). Retried by the workflow."""


class CorruptTokenDocumentError(RotationError):
    """The parameter does not hold a token document; the workflow will not overwrite it."""


class NoOriginHeaderError(RotationError):
    """No origin of the distribution carries the origin header: nothing to rotate."""


class NoSigningKeyError(NoOriginHeaderError):
    """Edge-signed mode: the KeyValueStore holds no signing key (and no origin carries a static
    header): nothing to rotate. Deploying the stack puts the first key in place."""


class KeyValueStoreError(RotationError):
    """Edge-signed mode: the KeyValueStore refused a call for a reason a retry cannot change
    (access denied, validation). The message carries AWS's error code only."""


class UnknownOriginHeaderError(RotationError):
    """CloudFront sends a value the token document does not know (changed out of band)."""


class DistributionChangedError(RotationError):
    """UpdateDistribution answered PreconditionFailed: retried with a fresh ETag."""


class CloudFrontThrottledError(RotationError):
    """CloudFront throttled the call, failed on its side, or could not be reached. Retried by
    the workflow."""


class CloudFrontError(RotationError):
    """CloudFront refused a call for a reason a retry cannot change (access denied, an invalid
    configuration). The message carries CloudFront's error code only, never its text."""


class TransientAwsError(RotationError):
    """Another AWS call (API Gateway, Lambda, Step Functions) was throttled, met a conflicting
    update in progress, failed on AWS's side or could not be reached. Retried by the
    workflow: the call changes nothing when it fails."""


class DeploymentTimeoutError(RotationError):
    """CloudFront did not report Deployed within the deploy timeout. The accepted set is intact."""


class VerificationFailedError(RotationError):
    """The probe through CloudFront or straight at the API did not answer as expected."""


class StateConflictError(RotationError):
    """The document or the distribution is not in the state this step expects."""


class PreviousStillInUseError(RotationError):
    """The live distribution still sends the value this step would remove."""
