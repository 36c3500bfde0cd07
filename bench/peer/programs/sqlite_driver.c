// A small SQLite workload for the peer benchmark: an in-memory database, a table filled in
// one transaction, an index, and queries that aggregate, sort and join. SQLite itself is not
// in the repository: bench/peer/build-sqlite.sh fetches the amalgamation (public domain) and
// links it with this driver for wasm32-wasi.
#include <stdio.h>
#include <stdlib.h>
#include "sqlite3.h"

static int print_row(void *unused, int columns, char **values, char **names) {
    (void)unused;
    for (int i = 0; i < columns; i++) {
        printf("%s%s=%s", i ? " " : "", names[i], values[i] ? values[i] : "NULL");
    }
    printf("\n");
    return 0;
}

static void run(sqlite3 *db, const char *sql) {
    char *error = NULL;
    if (sqlite3_exec(db, sql, print_row, NULL, &error) != SQLITE_OK) {
        fprintf(stderr, "sqlite: %s\n", error);
        sqlite3_free(error);
        exit(1);
    }
}

int main(int argc, char **argv) {
    int rows = argc > 1 ? atoi(argv[1]) : 20000;
    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) {
        fprintf(stderr, "cannot open an in-memory database\n");
        return 1;
    }
    run(db, "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, kind INTEGER, price REAL)");
    run(db, "CREATE TABLE kinds(kind INTEGER PRIMARY KEY, label TEXT)");
    run(db, "BEGIN");
    sqlite3_stmt *insert;
    sqlite3_prepare_v2(db, "INSERT INTO items(name, kind, price) VALUES (?, ?, ?)", -1, &insert,
                       NULL);
    unsigned state = 12345;
    for (int i = 0; i < rows; i++) {
        state = state * 1103515245u + 12345u;
        char name[32];
        snprintf(name, sizeof name, "item-%08x", state);
        sqlite3_bind_text(insert, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(insert, 2, (int)(state >> 8) % 17);
        sqlite3_bind_double(insert, 3, (double)(state % 100000) / 100.0);
        sqlite3_step(insert);
        sqlite3_reset(insert);
    }
    sqlite3_finalize(insert);
    for (int k = 0; k < 17; k++) {
        char sql[96];
        snprintf(sql, sizeof sql, "INSERT INTO kinds VALUES (%d, 'kind %d')", k, k);
        run(db, sql);
    }
    run(db, "COMMIT");
    run(db, "CREATE INDEX items_by_price ON items(price)");
    run(db, "SELECT count(*) AS n, round(sum(price), 2) AS total FROM items");
    run(db, "SELECT k.label, count(*) AS n, round(avg(i.price), 2) AS mean FROM items i "
            "JOIN kinds k ON i.kind = k.kind GROUP BY k.label ORDER BY n DESC LIMIT 3");
    run(db, "SELECT name, price FROM items WHERE price BETWEEN 500 AND 501 ORDER BY name LIMIT 3");
    sqlite3_close(db);
    return 0;
}
