"""The notifier service's tables. Only this service reads or writes them."""

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass
