import { z } from 'zod';
import { DEFAULT_ALPHA } from '../planner/cost-model.js';
import { PLAN_STRATEGIES } from '../planner/replication-planner.js';

/**
 * Every setting of the service, with its environment variable, default and meaning.
 *
 * One name per setting end to end: the field here, `RESUME_*` in the environment (or the
 * `JUPYTERHUB_*` variable exactly as the hub hands it to a service), and a `--kebab-case` CLI flag.
 * docs/reference/configuration.md is written from this table.
 */
export type SettingSpec = {
  env: string;
  flag: string;
  description: string;
  secret?: boolean;
};

export const SETTINGS = {
  hubApiUrl: {
    env: 'JUPYTERHUB_API_URL',
    flag: '--hub-api-url',
    description: "The hub's REST API, e.g. http://127.0.0.1:8081/hub/api. Set by the hub for managed services.",
  },
  hubApiToken: {
    env: 'JUPYTERHUB_API_TOKEN',
    flag: '--hub-api-token',
    description: "The service's own hub token (the `api_token` of the service in the hub config).",
    secret: true,
  },
  serviceName: {
    env: 'JUPYTERHUB_SERVICE_NAME',
    flag: '--service-name',
    description: 'The name the service is registered under in the hub.',
  },
  servicePrefix: {
    env: 'JUPYTERHUB_SERVICE_PREFIX',
    flag: '--service-prefix',
    description: 'URL prefix the proxy routes to the service (with trailing slash), e.g. /services/resume/.',
  },
  serviceUrl: {
    env: 'JUPYTERHUB_SERVICE_URL',
    flag: '--service-url',
    description: 'Where the service listens, e.g. http://127.0.0.1:10101 (the `url` of the service in the hub config).',
  },
  agentUrl: {
    env: 'RESUME_AGENT_URL',
    flag: '--agent-url',
    description:
      'The service root as user servers reach it, with trailing slash. Default: the service URL plus the prefix.',
  },
  hubPublicUrl: {
    env: 'RESUME_HUB_PUBLIC_URL',
    flag: '--hub-public-url',
    description:
      "The proxy's URL, e.g. http://127.0.0.1:8000. Used to reach a user server whose kernels never registered (no direct URL known).",
  },
  databaseUrl: {
    env: 'DATABASE_URL',
    flag: '--database-url',
    description: 'Postgres connection URL for history, checkpoints and blobs.',
    secret: true,
  },
  cullEnabled: {
    env: 'RESUME_CULL_ENABLED',
    flag: '--cull-enabled',
    description: 'Whether the service culls idle servers (checkpointing them first).',
  },
  cullTimeoutS: {
    env: 'RESUME_CULL_TIMEOUT',
    flag: '--cull-timeout',
    description: 'Seconds a server must be idle before it is checkpointed and stopped.',
  },
  cullEveryS: {
    env: 'RESUME_CULL_EVERY',
    flag: '--cull-every',
    description: 'Seconds between two culling rounds. Default: a quarter of the timeout, at most 300.',
  },
  cullOnCheckpointFailure: {
    env: 'RESUME_CULL_ON_CHECKPOINT_FAILURE',
    flag: '--cull-on-checkpoint-failure',
    description: 'Stop an idle server even when its checkpoint failed (its variables are then lost).',
  },
  checkpointTimeoutS: {
    env: 'RESUME_CHECKPOINT_TIMEOUT',
    flag: '--checkpoint-timeout',
    description: 'Seconds one kernel checkpoint may take before it is abandoned (the server is then kept).',
  },
  plan: {
    env: 'RESUME_PLAN',
    flag: '--plan',
    description: 'What checkpoints store: optimal (store or recompute, by minimum cut), store-all, or recompute-all.',
  },
  planAlpha: {
    env: 'RESUME_PLAN_ALPHA',
    flag: '--plan-alpha',
    description: 'Weight of checkpoint time against restore time in the plan: 1 migration-centric, 0.05 restore-centric.',
  },
  storeWriteMbps: {
    env: 'RESUME_STORE_WRITE_MBPS',
    flag: '--store-write-mbps',
    description: 'Blob store write bandwidth in MB/s for the plan. Default: measured at start-up, then from real checkpoints.',
  },
  storeReadMbps: {
    env: 'RESUME_STORE_READ_MBPS',
    flag: '--store-read-mbps',
    description: 'Blob store read bandwidth in MB/s for the plan. Default: measured at start-up, then from real restores.',
  },
  blobStore: {
    env: 'RESUME_BLOB_STORE',
    flag: '--blob-store',
    description: 'Where checkpoint bytes go: postgres (the database itself), filesystem (RESUME_BLOB_DIR) or s3 (RESUME_S3_*).',
  },
  blobDir: {
    env: 'RESUME_BLOB_DIR',
    flag: '--blob-dir',
    description: 'The directory of the filesystem blob store (a volume every service replica mounts).',
  },
  s3Bucket: {
    env: 'RESUME_S3_BUCKET',
    flag: '--s3-bucket',
    description: 'The bucket of the s3 blob store. Credentials come from the AWS SDK chain (AWS_ACCESS_KEY_ID, a role, …).',
  },
  s3Endpoint: {
    env: 'RESUME_S3_ENDPOINT',
    flag: '--s3-endpoint',
    description: 'An S3-compatible endpoint (MinIO, Ceph, …), e.g. http://minio:9000. Default: AWS S3.',
  },
  s3Region: {
    env: 'RESUME_S3_REGION',
    flag: '--s3-region',
    description: 'The bucket region. Default: us-east-1 with RESUME_S3_ENDPOINT, else the AWS SDK chain (AWS_REGION, a profile).',
  },
  s3Prefix: {
    env: 'RESUME_S3_PREFIX',
    flag: '--s3-prefix',
    description: 'Key prefix of every object the service writes in the bucket.',
  },
  keepCheckpoints: {
    env: 'RESUME_KEEP_CHECKPOINTS',
    flag: '--keep-checkpoints',
    description: 'Complete checkpoints kept per notebook session; older ones are deleted as new ones arrive.',
  },
  keepDays: {
    env: 'RESUME_KEEP_DAYS',
    flag: '--keep-days',
    description: 'Days a checkpoint is kept at most, however few a session has.',
  },
  userQuotaMb: {
    env: 'RESUME_USER_QUOTA_MB',
    flag: '--user-quota-mb',
    description: 'MB of checkpoint blobs one user may hold (all their notebooks). Default: no quota.',
  },
  backgroundCheckpoints: {
    env: 'RESUME_BACKGROUND_CHECKPOINTS',
    flag: '--background-checkpoints',
    description: 'Checkpoint kernels in the background once they were active and then idle, so a cull (or a crash) costs little.',
  },
  backgroundIdleS: {
    env: 'RESUME_BACKGROUND_IDLE',
    flag: '--background-idle',
    description: 'Seconds a kernel must be idle after running cells before it is checkpointed in the background.',
  },
  maintenanceEveryS: {
    env: 'RESUME_MAINTENANCE_EVERY',
    flag: '--maintenance-every',
    description: 'Seconds between rounds of retention and blob garbage collection.',
  },
  grantSecret: {
    env: 'RESUME_GRANT_SECRET',
    flag: '--grant-secret',
    description:
      'Key that signs blob grants (JWT, HS256). Default: a random key per process (grants then die with it).',
    secret: true,
  },
  grantTtlS: {
    env: 'RESUME_GRANT_TTL',
    flag: '--grant-ttl',
    description: 'Seconds a blob upload or download grant stays valid.',
  },
  logLevel: {
    env: 'RESUME_LOG_LEVEL',
    flag: '--log-level',
    description: 'fatal, error, warn, info, debug, trace or silent.',
  },
} as const satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;

const url = (what: string) =>
  z.url({ message: `must be an absolute URL (${what})` }).transform((u) => u.replace(/\/+$/, ''));
const seconds = z.coerce.number({ message: 'must be a number of seconds' }).positive('must be greater than 0');
const flag = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])], {
    message: 'must be true or false (also 1/0, yes/no)',
  })
  .transform((v) =>
  typeof v === 'boolean' ? v : ['true', '1', 'yes'].includes(v),
);

/** The schema raw settings (strings from env/flags) are validated and coerced with. */
export const configSchema = z
  .object({
    hubApiUrl: url('e.g. http://127.0.0.1:8081/hub/api'),
    hubApiToken: z.string().min(8, 'must be the service token the hub knows (at least 8 characters)'),
    serviceName: z.string().regex(/^[a-zA-Z0-9_-]+$/, 'letters, digits, - and _ only').default('resume'),
    servicePrefix: z
      .string()
      .regex(/^\/(.*\/)?$/, 'must start and end with "/", e.g. /services/resume/')
      .default('/services/resume/'),
    serviceUrl: url('e.g. http://127.0.0.1:10101').default('http://127.0.0.1:10101'),
    agentUrl: z.url({ message: 'must be an absolute URL' }).optional(),
    hubPublicUrl: url('e.g. http://127.0.0.1:8000').optional(),
    databaseUrl: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL, e.g. postgres://user@127.0.0.1:5432/resume'),
    cullEnabled: flag.default(true),
    cullTimeoutS: seconds.default(3600),
    cullEveryS: seconds.optional(),
    cullOnCheckpointFailure: flag.default(false),
    checkpointTimeoutS: seconds.default(600),
    plan: z.enum(PLAN_STRATEGIES, { message: 'must be optimal, store-all or recompute-all' }).default('optimal'),
    planAlpha: z.coerce.number({ message: 'must be a number' }).min(0, 'must be 0 or more').default(DEFAULT_ALPHA),
    storeWriteMbps: z.coerce.number({ message: 'must be a number of MB/s' }).positive('must be greater than 0').optional(),
    storeReadMbps: z.coerce.number({ message: 'must be a number of MB/s' }).positive('must be greater than 0').optional(),
    blobStore: z.enum(['postgres', 'filesystem', 's3'], { message: 'must be postgres, filesystem or s3' }).default('postgres'),
    blobDir: z.string().min(1).optional(),
    s3Bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name').optional(),
    s3Endpoint: url('e.g. http://127.0.0.1:9000').optional(),
    s3Region: z.string().min(1).optional(),
    s3Prefix: z
      .string()
      // Never empty: garbage collection removes every object under the prefix that it does not know.
      .regex(/^([a-z0-9][a-z0-9-]*\/)+$/, 'must be lowercase segments each ending in "/", e.g. jupyterhub-resume/')
      .default('jupyterhub-resume/'),
    keepCheckpoints: z.coerce.number({ message: 'must be a whole number' }).int('must be a whole number').min(1, 'must be at least 1').default(3),
    keepDays: z.coerce.number({ message: 'must be a number of days' }).positive('must be greater than 0').default(30),
    userQuotaMb: z.coerce.number({ message: 'must be a number of MB' }).positive('must be greater than 0').optional(),
    backgroundCheckpoints: flag.default(true),
    backgroundIdleS: seconds.default(180),
    maintenanceEveryS: seconds.default(900),
    grantSecret: z.string().min(32, 'must be at least 32 characters').optional(),
    grantTtlS: seconds.default(900),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.blobStore === 'filesystem' && c.blobDir === undefined) {
      ctx.addIssue({ code: 'custom', path: ['blobDir'], message: 'is required when RESUME_BLOB_STORE is filesystem' });
    }
    if (c.blobStore === 's3' && c.s3Bucket === undefined) {
      ctx.addIssue({ code: 'custom', path: ['s3Bucket'], message: 'is required when RESUME_BLOB_STORE is s3' });
    }
  });

type Parsed = z.output<typeof configSchema>;

/** The validated, frozen configuration every component receives. */
export type Config = Readonly<
  Omit<Parsed, 'agentUrl' | 'cullEveryS'> & {
    /** Service root as user servers reach it, always with a trailing slash. */
    agentUrl: string;
    cullEveryS: number;
    /** Host and port to listen on, from `serviceUrl`. */
    listen: { host: string; port: number };
  }
>;
