"""Imports every domain's models so Base.metadata knows all tables (Alembic, create_all)."""
import server.models  # noqa: F401
import terminals.models  # noqa: F401
import terminals.software  # noqa: F401
import cashier.models  # noqa: F401
import terminals.sas_models  # noqa: F401
import players.models  # noqa: F401
import terminals.config_models  # noqa: F401
import reports.models  # noqa: F401
