"""SQLAlchemy ORM on in-memory SQLite: a report service that keeps its query results."""

from sqlalchemy import Integer, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[int] = mapped_column(Integer, index=True)
    customer: Mapped[str] = mapped_column(String(40))


def open_database():
    """A fresh in-memory database (one connection, kept) with 30 days of 20 orders each."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(Order(day=d, customer=f"customer-{d}-{k}") for d in range(30) for k in range(20))
        session.commit()
    return engine


class ReportService:
    """One Session per report, as a web request would have: each call loads fresh ORM objects."""

    def __init__(self, engine):
        self.engine = engine
        self.history = []
        self.last = []

    def daily_report_leaky(self, n):
        """Leaky: every result list of query(...).all() is kept "for the audit page"."""
        with Session(self.engine) as session:
            rows = session.query(Order).filter(Order.day == n % 30).all()
        self.history.append(rows)
        return len(rows)

    def daily_report_fixed(self, n):
        """Fixed: only the latest result list is kept; the earlier ones (and their rows) go."""
        with Session(self.engine) as session:
            rows = session.query(Order).filter(Order.day == n % 30).all()
        self.last = rows
        return len(rows)
