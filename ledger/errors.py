"""Ledger errors, each with a message a person can act on."""


class LedgerError(Exception):
    """Base class: the posting was refused and nothing was written."""


class UnbalancedEntry(LedgerError):
    pass


class PeriodLocked(LedgerError):
    pass


class MissingExchangeRate(LedgerError):
    pass


class MissingAccount(LedgerError):
    pass
