// send.js - a real OpenTelemetry JS SDK pipeline (BasicTracerProvider ->
// BatchSpanProcessor -> an OTLP exporter) that sends the spans of
// tests/integration/test_otlp.py to a vitals-agent.
//
//   node send.js <grpc|proto|json> <url> <service.name | -> [gzip]
//
// The spans are fixed (see SPANS below and the test's EXPECTED table): GenAI
// spans with new and old attribute names, OpenInference LLM and EMBEDDING
// spans, errors (status + error.type, status + exception event), spans that
// are not LLM calls, and one LLM span the agent must reject. Prints one JSON
// line {"exported": N, "results": [...codes], "warnings": [...]} and exits 0
// when every export call succeeded.
'use strict';
const api = require('@opentelemetry/api');
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { defaultResource, resourceFromAttributes } = require('@opentelemetry/resources');

const [kind, url, service, comp] = process.argv.slice(2);
const warnings = [];
api.diag.setLogger({
  error: (...a) => warnings.push(a.map(String).join(' ')),
  warn: (...a) => warnings.push(a.map(String).join(' ')),
  info: () => {}, debug: () => {}, verbose: () => {},
}, api.DiagLogLevel.WARN);

function exporter() {
  const opts = { url, compression: comp === 'gzip' ? 'gzip' : 'none', timeoutMillis: 10000 };
  if (kind === 'grpc')
    return new (require('@opentelemetry/exporter-trace-otlp-grpc').OTLPTraceExporter)(opts);
  if (kind === 'proto')
    return new (require('@opentelemetry/exporter-trace-otlp-proto').OTLPTraceExporter)(opts);
  if (kind === 'json')
    return new (require('@opentelemetry/exporter-trace-otlp-http').OTLPTraceExporter)(opts);
  throw new Error('kind must be grpc, proto or json');
}

const exp = exporter();
const results = [];
let exported = 0;
const realExport = exp.export.bind(exp);
exp.export = (spans, done) => realExport(spans, (r) => {
  results.push(r.code);
  if (r.code === 0) exported += spans.length;
  else warnings.push(String(r.error));
  done(r);
});

const provider = new BasicTracerProvider({
  // service "-": no service.name, so the SDK's "unknown_service:..." default goes out
  resource: defaultResource().merge(resourceFromAttributes(Object.assign(
    service === '-' ? {} : { 'service.name': service },
    { 'deployment.environment': 'prod', 'tier': 'silver' }))),
  spanProcessors: [new BatchSpanProcessor(exp, { maxExportBatchSize: 512, scheduledDelayMillis: 100 })],
});
const tracer = provider.getTracer('vitals-otlp-it', '1.0.0');

// start: ms since epoch; dur: ms. Times are exact in the span (hrtime from ms).
const T0 = Date.now() - 5000;
const SPANS = [
  { name: 'chat gpt-4o', start: 0, dur: 812, attrs: {
    'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'openai',
    'gen_ai.request.model': 'gpt-4o', 'gen_ai.response.model': 'gpt-4o-2024-08-06',
    'gen_ai.usage.input_tokens': 512, 'gen_ai.usage.output_tokens': 128,
    'gen_ai.server.time_to_first_token': 0.125, 'evaluation.relevance.score': 0.9,
    'gen_ai.response.finish_reasons': ['stop'] } },
  { name: 'chat claude', start: 10, dur: 1500, error: { attr: 'RateLimitError' }, attrs: {
    'gen_ai.operation.name': 'chat', 'gen_ai.system': 'anthropic',
    'gen_ai.request.model': 'claude-3-5-sonnet', 'gen_ai.usage.prompt_tokens': 100,
    'gen_ai.usage.completion_tokens': 20 } },
  { name: 'ChatCompletion', start: 20, dur: 640, attrs: {
    'openinference.span.kind': 'LLM', 'llm.model_name': 'mistral-large',
    'llm.provider': 'mistralai', 'llm.system': 'mistral', 'llm.token_count.prompt': 300,
    'llm.token_count.completion': 50, 'llm.token_count.total': 350, 'llm.cost.total': 0.0042,
    'annotation.name': 'helpfulness', 'annotation.score': 0.75, 'tier': 'gold',
    'retrieval.documents.0.document.score': 0.8, 'retrieval.documents.1.document.score': 0.6 } },
  { name: 'embed', start: 30, dur: 95, error: { exception: 'TimeoutError' }, attrs: {
    'openinference.span.kind': 'EMBEDDING', 'embedding.model_name': 'text-embedding-3-small',
    'llm.provider': 'openai', 'embedding.embeddings.0.embedding.vector': [0.25, -0.5, 1] } },
  { name: 'embeddings text-embedding-3-large', start: 40, dur: 50, attrs: {
    'gen_ai.operation.name': 'embeddings', 'gen_ai.provider.name': 'openai',
    'gen_ai.request.model': 'text-embedding-3-large', 'gen_ai.usage.input_tokens': 40 } },
  // not LLM calls: ignored
  { name: 'GET /v1/answer', start: 0, dur: 2000, attrs: { 'http.request.method': 'GET' } },
  { name: 'rag chain', start: 1, dur: 1800, attrs: {
    'openinference.span.kind': 'CHAIN', 'llm.model_name': 'gpt-4o' } },
  { name: 'invoke_agent support', start: 2, dur: 1900, attrs: {
    'gen_ai.operation.name': 'invoke_agent', 'gen_ai.request.model': 'gpt-4o' } },
  // an LLM span that fails validation: rejected (partial success)
  { name: 'chat broken', start: 50, dur: 10, attrs: {
    'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'openai',
    'gen_ai.request.model': 'gpt-4o', 'gen_ai.usage.input_tokens': -5 } },
];

for (const s of SPANS) {
  const span = tracer.startSpan(s.name, {
    kind: api.SpanKind.CLIENT, attributes: s.attrs, startTime: T0 + s.start,
  });
  if (s.error) {
    if (s.error.attr) span.setAttribute('error.type', s.error.attr);
    if (s.error.exception) {
      const e = new Error('upstream timed out');
      e.name = s.error.exception;
      span.recordException(e);
    }
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: 'failed' });
  }
  span.end(T0 + s.start + s.dur);
}

(async () => {
  await provider.forceFlush();
  await provider.shutdown();
  console.log(JSON.stringify({ exported, results, warnings }));
  process.exit(results.length > 0 && results.every((c) => c === 0) ? 0 : 1);
})().catch((e) => {
  console.log(JSON.stringify({ exported, results, warnings, error: String(e) }));
  process.exit(1);
});
