/**
 * Prometheus metrics (prom-client): one registry per gateway, so tests can run
 * several in one process. Counters on the per-message path are pre-bound per
 * label value; gauges read the spool, drainer and broker only when scraped.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricSources {
  spool(): {
    bytes: number;
    pendingRecords: number;
    oldestUnconfirmedAgeMs: number;
    backpressure: boolean;
    fsyncs: number;
  };
  drainer(): {
    pointsWritten: number;
    batches: number;
    retries: number;
    rejectedPoints: number;
    lastWriteLatencyMs: number;
  };
  connectedDevices(): number;
  streams(): { open: number; dropped: number };
}

/** A bound counter child. */
interface Inc {
  inc(value?: number): void;
}

/** Ack latency buckets, seconds: the spool commit is sub-millisecond to a few ms. */
const ACK_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];

export class Metrics {
  readonly registry = new Registry();
  readonly #messages: Counter<'type' | 'outcome'>;
  readonly #readings: Counter<'type'>;
  readonly #rejections: Counter<'code'>;
  readonly #ack: Histogram;
  readonly #slowed: Counter;
  /** Bound children per type, so the hot path does no label hashing. */
  readonly #accepted = new Map<string, { messages: Inc; readings: Inc }>();

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#messages = new Counter({
      name: 'taihu_ingest_messages_total',
      help: 'Telemetry messages by device type and outcome (accepted or rejected)',
      labelNames: ['type', 'outcome'],
      registers,
    });
    this.#readings = new Counter({
      name: 'taihu_ingest_readings_total',
      help: 'Readings accepted (made durable in the spool), by device type',
      labelNames: ['type'],
      registers,
    });
    this.#rejections = new Counter({
      name: 'taihu_rejections_total',
      help: 'Rejected messages by rejection code',
      labelNames: ['code'],
      registers,
    });
    this.#slowed = new Counter({
      name: 'taihu_rate_slowed_messages_total',
      help: 'QoS 1/2 messages over their device rate whose acknowledgement waited for it (none is dropped)',
      registers,
    });
    this.#ack = new Histogram({
      name: 'taihu_ack_latency_seconds',
      help: 'Time from receiving a telemetry PUBLISH to releasing its acknowledgement',
      buckets: ACK_BUCKETS,
      registers,
    });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    gauge(
      'taihu_spool_bytes',
      'Bytes in the spool not yet confirmed by the store',
      () => sources.spool().bytes,
    );
    gauge(
      'taihu_spool_pending_records',
      'Spool records not yet confirmed by the store',
      () => sources.spool().pendingRecords,
    );
    gauge(
      'taihu_spool_oldest_age_seconds',
      'Age of the oldest spool record not yet confirmed by the store',
      () => sources.spool().oldestUnconfirmedAgeMs / 1000,
    );
    gauge(
      'taihu_spool_backpressure',
      '1 while the spool is above its high watermark and acknowledgements are held',
      () => (sources.spool().backpressure ? 1 : 0),
    );
    gauge(
      'taihu_spool_fsyncs',
      'fdatasync calls made by the spool since start',
      () => sources.spool().fsyncs,
    );
    // The store's figures were named taihu_sink_* up to 0.1; each old name stays, with the same
    // value, for one release so dashboards and alerts can move (README, "Metrics").
    const storeGauge = (name: string, help: string, read: () => number) => {
      gauge(`taihu_store_${name}`, help, read);
      gauge(`taihu_sink_${name}`, `${help} (deprecated: use taihu_store_${name})`, read);
    };
    storeGauge(
      'points_written',
      'Points written to the store since start',
      () => sources.drainer().pointsWritten,
    );
    storeGauge(
      'batches',
      'Batches written to the store since start',
      () => sources.drainer().batches,
    );
    storeGauge('retries', 'Store write retries since start', () => sources.drainer().retries);
    storeGauge(
      'rejected_points',
      'Points the store refused for good since start',
      () => sources.drainer().rejectedPoints,
    );
    storeGauge(
      'last_write_seconds',
      'Latency of the last successful store write',
      () => sources.drainer().lastWriteLatencyMs / 1000,
    );
    gauge('taihu_connected_devices', 'MQTT clients connected now', () =>
      sources.connectedDevices(),
    );
  }

  accepted(type: string, readings: number): void {
    let c = this.#accepted.get(type);
    if (!c) {
      c = {
        messages: this.#messages.labels(type, 'accepted'),
        readings: this.#readings.labels(type),
      };
      this.#accepted.set(type, c);
    }
    c.messages.inc();
    c.readings.inc(readings);
  }

  rejected(type: string, code: string): void {
    this.#messages.labels(type, 'rejected').inc();
    this.#rejections.labels(code).inc();
  }

  slowed(): void {
    this.#slowed.inc();
  }

  ackLatency(seconds: number): void {
    this.#ack.observe(seconds);
  }
}
