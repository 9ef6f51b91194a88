import type { Attributes, Counter, Gauge, Histogram, Tracer } from '@opentelemetry/api';
import { VERSION } from './version.js';

/**
 * OpenTelemetry, when the standard variables ask for it
 * (`OTEL_EXPORTER_OTLP_ENDPOINT`, or the per-signal `…_TRACES_ENDPOINT` /
 * `…_METRICS_ENDPOINT`): spans for each command, phase and step, and the
 * backfill's, lock waits' and the gate's metrics, sent over OTLP/HTTP. When
 * none is set, no OpenTelemetry module is even loaded (they are imported
 * dynamically by `startTelemetry`), so every call here is a no-op and a run
 * costs and sends nothing. docs/observability.md lists what is sent.
 */

/** The metrics pgshift records; see docs/observability.md. */
type MetricName = 'backfillRows' | 'backfillRate' | 'batchDuration' | 'lockWait' | 'throttleWait' | 'gateState';

interface Active {
  readonly tracer: Tracer;
  readonly api: typeof import('@opentelemetry/api');
  readonly counters: { readonly backfillRows: Counter };
  readonly gauges: { readonly backfillRate: Gauge; readonly gateState: Gauge };
  readonly histograms: { readonly batchDuration: Histogram; readonly lockWait: Histogram; readonly throttleWait: Histogram };
  shutdown(): Promise<void>;
}

let active: Active | null = null;

/** Whether the environment asks for telemetry (and `OTEL_SDK_DISABLED` does not turn it off). */
function telemetryConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.toLowerCase() === 'true') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT);
}

/**
 * Set up tracing and metrics if configured; else nothing (and nothing is
 * imported). The exporters read the rest of the standard variables
 * themselves (headers, timeouts); `OTEL_SERVICE_NAME` names the service
 * (default `pgshift`).
 */
export async function startTelemetry(): Promise<void> {
  if (active || !telemetryConfigured()) return;
  const [api, traceNode, traceExporter, sdkMetrics, metricExporter, resources] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/sdk-metrics'),
    import('@opentelemetry/exporter-metrics-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const resource = resources.resourceFromAttributes({ 'service.name': process.env.OTEL_SERVICE_NAME || 'pgshift', 'service.version': VERSION });
  const tracing = new traceNode.NodeTracerProvider({ resource, spanProcessors: [new traceNode.BatchSpanProcessor(new traceExporter.OTLPTraceExporter())] });
  // register() also installs the AsyncLocalStorage context manager, so a step's span is a child of its phase's.
  tracing.register();
  const metering = new sdkMetrics.MeterProvider({
    resource,
    // The reader, unlike sdk-node, does not read the standard interval variable itself.
    readers: [
      new sdkMetrics.PeriodicExportingMetricReader({
        exporter: new metricExporter.OTLPMetricExporter(),
        exportIntervalMillis: Number(process.env.OTEL_METRIC_EXPORT_INTERVAL) || 60_000,
      }),
    ],
  });
  const meter = metering.getMeter('pgshift', VERSION);
  active = {
    api,
    tracer: tracing.getTracer('pgshift', VERSION),
    counters: { backfillRows: meter.createCounter('pgshift.backfill.rows', { unit: '{row}', description: 'rows backfilled' }) },
    gauges: {
      backfillRate: meter.createGauge('pgshift.backfill.rate', { unit: '{row}/s', description: "the backfill's rows per second in this run" }),
      gateState: meter.createGauge('pgshift.gate.state', {
        description: 'the old-code gate at its last look: 1 shut (old code seen within old_code_quiet), 0 open',
      }),
    },
    histograms: {
      batchDuration: meter.createHistogram('pgshift.backfill.batch.duration', { unit: 'ms', description: 'one backfill batch, from its start to its commit' }),
      lockWait: meter.createHistogram('pgshift.lock.wait.duration', { unit: 'ms', description: 'how long a step waited for its locks outside the lock queue' }),
      throttleWait: meter.createHistogram('pgshift.backfill.throttle.duration', {
        unit: 'ms',
        description: 'how long the backfill waited for a throttle (replica lag, a pause)',
      }),
    },
    // Flushes what is buffered: a CLI run is short, and its last batch of spans and metrics matters most.
    shutdown: async () => {
      await Promise.allSettled([tracing.shutdown(), metering.shutdown()]);
    },
  };
}

/** Send what is buffered and stop; a no-op when telemetry is off. An export that fails is not the migration's failure. */
export async function stopTelemetry(): Promise<void> {
  const was = active;
  active = null;
  await was?.shutdown().catch(() => undefined);
}

/** Run `fn` in a span named `name` (a child of the span it runs in); the span records an error and its message. */
export async function inSpan<T>(name: string, attributes: Attributes, fn: () => Promise<T>): Promise<T> {
  if (!active) return fn();
  const { api, tracer } = active;
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn();
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: (error as Error)?.message ?? String(error) });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** Record one value of a metric; a no-op when telemetry is off. */
export function recordMetric(name: MetricName, value: number, attributes: Attributes): void {
  if (!active) return;
  if (name === 'backfillRows') active.counters.backfillRows.add(value, attributes);
  else if (name === 'backfillRate' || name === 'gateState') active.gauges[name].record(value, attributes);
  else active.histograms[name].record(value, attributes);
}
