"""What the SAS host keeps per EGM besides the registry: the secure-enhanced validation sequence.

The host sets an EGM's machine id and last sequence with LP 4C at every link-up, and checks each
ticket record (LP 4D) against the number that sequence + 1 gives; the sequence must therefore
survive a host restart and an EGM RAM clear, so it lives here rather than in the poller.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UTCDateTime


class SasValidationState(Base):
    __tablename__ = "sas_validation_state"

    egm_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    machine_id: Mapped[int] = mapped_column(Integer)
    # The last sequence number the EGM used (its next ticket carries sequence + 1).
    sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
