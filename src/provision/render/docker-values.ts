import { randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'
import { PRIVATE_MODE } from '../../shared/atomic-write.js'
import type { HelixConfig } from '../../shared/config.js'
import type { HelixHome } from '../../shared/home.js'
import { renderTemplate, templatesDir } from '../../shared/templates.js'
import { daemonGrpcPort } from './grpc-upstreams.js'
import { nginxValues } from './nginx-values.js'
import type { RenderedFile } from './rendered-file.js'

/** Image versions the generated files pin; bump them here, in one place. */
export const IMAGES = {
  node: '20',
  // cuDNN 9 is what onnxruntime-node's CUDA 12 provider links against.
  cuda: '12.6.3-cudnn-runtime-ubuntu24.04',
  postgres: 'postgres:17-bookworm',
  redis: 'redis:7-bookworm',
  nginx: 'nginx:1.27-bookworm',
} as const

/** Where the helix directory is mounted inside the containers. */
const CONTAINER_HELIX_DIR = '/var/lib/helix'
/** Where nginx finds the public certificates inside its container. */
const CONTAINER_CERTS_DIR = '/etc/helix/certs'
/** uid/gid of the "node" user of the official Node images. */
const NODE_UID = 1000
/** Port the compose nginx takes gRPC on inside its container (published as nginx.grpc_port). */
const CONTAINER_NGINX_GRPC_PORT = 8444

export interface DockerfileValues {
  nodeVersion: string
  cudaImageTag: string
  helixDir: string
  port: number
  /** The daemon's gRPC port; absent when server.grpc.enabled is false. */
  grpcPort?: number
  uid: number
  dockerfilePath: string
  buildContext: string
}

export interface ComposeValues {
  image: string
  buildContext: string
  dockerfile: string
  gpu: boolean
  helixDir: string
  certsDir: string
  port: number
  /** The daemon's gRPC port, and the host port nginx publishes for gRPC; absent without gRPC. */
  grpc?: { port: number; nginxPort: number; nginxContainerPort: number }
  httpPort: number
  httpsPort: number
  postgresImage: string
  redisImage: string
  nginxImage: string
}

/** The helix source tree (package root): the build context of the images. */
export function packageRoot(): string {
  return dirname(templatesDir())
}

export function dockerfileValues(home: HelixHome, config: HelixConfig): DockerfileValues {
  return {
    nodeVersion: IMAGES.node,
    cudaImageTag: IMAGES.cuda,
    helixDir: CONTAINER_HELIX_DIR,
    port: config.server.port,
    grpcPort: daemonGrpcPort(config),
    uid: NODE_UID,
    dockerfilePath: join(home.dockerDir, 'Dockerfile'),
    buildContext: packageRoot(),
  }
}

export function composeValues(home: HelixHome, config: HelixConfig, version: string): ComposeValues {
  const gpu = config.models.device === 'cuda'
  const grpcPort = daemonGrpcPort(config)
  return {
    image: `helix:${version}${gpu ? '-gpu' : ''}`,
    buildContext: packageRoot(),
    dockerfile: join(home.dockerDir, gpu ? 'Dockerfile.gpu' : 'Dockerfile'),
    gpu,
    helixDir: CONTAINER_HELIX_DIR,
    certsDir: CONTAINER_CERTS_DIR,
    port: config.server.port,
    ...(grpcPort !== undefined
      ? {
          grpc: {
            port: grpcPort,
            nginxPort: config.nginx.grpc_port,
            nginxContainerPort: CONTAINER_NGINX_GRPC_PORT,
          },
        }
      : {}),
    httpPort: config.nginx.http_port,
    httpsPort: config.nginx.https_port,
    postgresImage: IMAGES.postgres,
    redisImage: IMAGES.redis,
    nginxImage: IMAGES.nginx,
  }
}

/** docker/: both Dockerfiles with their ignore files, compose.yaml, its nginx.conf and the DB password. */
export function planDocker(home: HelixHome, config: HelixConfig, version: string): RenderedFile[] {
  const dockerfile = dockerfileValues(home, config)
  const dockerignore = renderTemplate('docker/Dockerfile.dockerignore.eta', {})
  const grpcPort = daemonGrpcPort(config)
  // The compose nginx reaches the daemon by its service name and reads the TLS key from a secret.
  const containerNginx = nginxValues(config, {
    prefix: '/etc/nginx/',
    user: 'nginx',
    certsDir: CONTAINER_CERTS_DIR,
    serverKey: '/run/secrets/tls_server_key',
    upstreams: [`helix:${config.server.port}`],
    grpcUpstreams: grpcPort === undefined ? [] : [`helix:${grpcPort}`],
    grpcPort: CONTAINER_NGINX_GRPC_PORT,
    // The image is pinned to nginx 1.27 (IMAGES.nginx), which takes `http2 on;`.
    http2: 'directive',
    httpPort: 80,
    httpsPort: 443,
    logs: { error: 'stderr', access: '/dev/stdout' },
  })
  const file = (name: string, data: string): RenderedFile => ({ path: join(home.dockerDir, name), data })
  return [
    file('Dockerfile', renderTemplate('docker/Dockerfile.eta', dockerfile)),
    file('Dockerfile.dockerignore', dockerignore),
    file('Dockerfile.gpu', renderTemplate('docker/Dockerfile.gpu.eta', dockerfile)),
    file('Dockerfile.gpu.dockerignore', dockerignore),
    file('compose.yaml', renderTemplate('docker/compose.yaml.eta', composeValues(home, config, version))),
    file('nginx.conf', renderTemplate('nginx/nginx.conf.eta', containerNginx)),
    {
      path: join(home.dockerDir, 'secrets', 'db_password'),
      // 32 random bytes, hex so it can go into a postgres:// URL unescaped.
      data: `${randomBytes(32).toString('hex')}\n`,
      mode: PRIVATE_MODE,
      generatedSecret: true,
    },
  ]
}
