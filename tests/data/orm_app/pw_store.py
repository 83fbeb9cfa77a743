"""The app's data access through peewee's models."""

from peewee import SQL, CharField, Model, SqliteDatabase

DB = SqliteDatabase(None)
SLOWER = SQL("(WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000) "
             "SELECT count(*) FROM n) > 0")


class Item(Model):
    name = CharField()

    class Meta:
        database = DB
        table_name = "items"


class Store:
    def __init__(self, path, slow):
        DB.init(path)
        DB.connect()
        DB.create_tables([Item])
        self.slow = slow

    def seed(self, count):
        with DB.atomic():
            Item.insert_many([{"name": f"item {i}"} for i in range(count)]).execute()

    def search_items(self, word):
        query = Item.select().where(Item.name.contains(word))
        if self.slow:
            query = query.where(SLOWER)
        return list(query)  # search query

    def add_item(self, name):
        with DB.atomic():
            Item.create(name=name)  # add insert
