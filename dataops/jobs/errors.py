from dataops.errors import NotFound, ServiceUnavailable


class JobNotFound(NotFound):
    pass


class BrokerUnavailable(ServiceUnavailable):
    pass
