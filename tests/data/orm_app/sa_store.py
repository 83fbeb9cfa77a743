"""The app's data access through SQLAlchemy's ORM (no SQL of its own on the fast path)."""

from sqlalchemy import Integer, String, create_engine, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

SLOWER = text("(WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000) "
              "SELECT count(*) FROM n) > 0")


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))


class Store:
    def __init__(self, path, slow):
        self.engine = create_engine(f"sqlite:///{path}")
        Base.metadata.create_all(self.engine)
        self.slow = slow

    def seed(self, count):
        with Session(self.engine) as session:
            session.add_all(Item(name=f"item {i}") for i in range(count))
            session.commit()

    def search_items(self, word):
        query = select(Item).where(Item.name.like(f"%{word}%"))
        if self.slow:
            query = query.where(SLOWER)
        with Session(self.engine) as session:
            return session.scalars(query).all()  # search query

    def add_item(self, name):
        with Session(self.engine) as session:
            session.add(Item(name=name))
            session.commit()  # add commit
