/** Global test setup: nothing to start yet. */
export default function setup(): void {}
