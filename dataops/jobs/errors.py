from dataops.errors import Conflict, NotFound, ServiceUnavailable


class JobNotFound(NotFound):
    pass


class BrokerUnavailable(ServiceUnavailable):
    pass


class LeaseLost(Conflict):
    """Another attempt now holds the job: this one must stop without writing its outcome."""
