/** Postgres storage: the embedded server for demo and tests, the pool, migrations and the stores. */
export { EmbeddedPostgresServer, type EmbeddedPostgresServerOptions } from './embedded-postgres-server.js';
export { createPool, withClient, withTransaction, redactDatabaseUrl, describePool, type PoolOptions, type ClientLease } from './pool.js';
export { mapPgError, storeUnavailable, sqlState, isConnectionFailure } from './map-pg-error.js';
export { migrate, readMigrations, DEFAULT_MIGRATIONS_DIR, type Migration, type MigrationResult } from './migrate.js';
export { PgCheckpointStore, type PgCheckpointStoreOptions } from './pg-checkpoint-store.js';
export { PgBlobStore, type PgBlobStoreOptions } from './pg-blob-store.js';
export { PgObjectStore, OBJECT_CHUNK_BYTES, type PgObjectStoreOptions } from './pg-object-store.js';
