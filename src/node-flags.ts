/**
 * V8 flags the gateway runs with, wherever it is started: the `taihu` command's shebang
 * (src/main.ts), the npm scripts, the image's NODE_OPTIONS (docker/Dockerfile) and the
 * benchmark's gateway. A test keeps them the same.
 *
 * `--max-semi-space-size=64` (MiB; Node 20's default is 16): every message leaves a few dozen
 * short-lived objects behind, and thousands of messages wait for their commit at any moment, so
 * a small young generation is scavenged hundreds of times a second and copies the waiting ones
 * each time. Measured with `taihu bench ingest --repeat 2` on 2 cores: 37,467 readings/s
 * accepted at the default, 39,263 at 32, 42,183 at 64, 44,768 at 128; peak RSS at that load
 * 470, 536, 609 and 714 MiB. Nothing is reserved up front: an idle gateway does not grow.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];
