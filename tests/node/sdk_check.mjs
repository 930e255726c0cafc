// The official `openai` npm SDK against an OpenAI-compatible base URL: one scenario per run.
//
//   OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 OPENAI_API_KEY=... node sdk_check.mjs <scenario>
//
// Prints ONE JSON document on stdout: what the SDK handed back, normalised so that two servers
// telling the same story print the same bytes (ids become `<resp_1>`, `<file-2>`, ... in order of
// first appearance; timestamps and obfuscation padding become placeholders). Anything the SDK
// raises that the scenario did not expect goes to stderr with exit status 1.
// tests/node/test_node_sdk.py runs it against the gateway's /v1 and the embedded server itself.

import OpenAI, { toFile } from "openai";

const MODEL = "gpt-4o-mini";

// A 1x1 red PNG (Pillow-made, CRCs intact): the file actor sniffs and decodes what it uploads.
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC",
  "base64",
);

const WEATHER_TOOL = {
  type: "function",
  name: "get_weather",
  description: "The weather in a city.",
  parameters: {
    type: "object",
    properties: { city: { type: "string" } },
    required: ["city"],
    additionalProperties: false,
  },
  strict: true,
};

function client(options = {}) {
  // No SDK retries: what the server sends is what the scenario sees (the daemon does retries).
  return new OpenAI({ maxRetries: 0, timeout: 30_000, ...options });
}

// --- normalisation ---------------------------------------------------------------------------

const ID = /\b(resp|msg|fc|call|chatcmpl|rs|file|upload|part)([-_])[A-Za-z0-9]{6,}\b/g;
const TIMESTAMP_KEYS = new Set(["created", "created_at", "completed_at", "expires_at"]);
const RANDOM_KEYS = new Set(["obfuscation", "system_fingerprint"]);

function makeNormaliser() {
  const seen = new Map();
  const counters = new Map();
  const id = (match, prefix, sep) => {
    if (!seen.has(match)) {
      const n = (counters.get(prefix) ?? 0) + 1;
      counters.set(prefix, n);
      seen.set(match, `<${prefix}${sep}${n}>`);
    }
    return seen.get(match);
  };
  const walk = (value, key) => {
    if (typeof value === "string") {
      return RANDOM_KEYS.has(key) ? "<random>" : value.replace(ID, id);
    }
    if (typeof value === "number" && TIMESTAMP_KEYS.has(key)) return "<timestamp>";
    if (Array.isArray(value)) return value.map((item) => walk(item, undefined));
    if (value !== null && typeof value === "object") {
      const out = {};
      for (const k of Object.keys(value).sort()) out[k] = walk(value[k], k);
      return out;
    }
    return value;
  };
  return (value) => walk(JSON.parse(JSON.stringify(value)), undefined);
}

function apiError(error) {
  if (!(error instanceof OpenAI.APIError) || error.status === undefined) throw error;
  return {
    class: error.constructor.name,
    status: error.status,
    message: error.error?.message ?? error.message,
    type: error.type ?? null,
    code: error.code ?? null,
    param: error.param ?? null,
  };
}

async function expectError(promise) {
  try {
    const value = await promise;
    return { unexpected_success: value };
  } catch (error) {
    return apiError(error);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const TERMINAL = new Set(["completed", "failed", "cancelled", "incomplete"]);

async function pollToTerminal(openai, id) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const response = await openai.responses.retrieve(id);
    if (TERMINAL.has(response.status)) return response;
    if (Date.now() > deadline) throw new Error(`${id} still ${response.status} after 20 s`);
    await sleep(20);
  }
}

function eventView(event) {
  return { type: event.type, sequence_number: event.sequence_number };
}

function chatChunkView(chunk) {
  return {
    choices: chunk.choices.map((c) => ({
      index: c.index,
      delta: c.delta,
      finish_reason: c.finish_reason ?? null,
    })),
    usage: chunk.usage ?? null,
  };
}

// --- scenarios -------------------------------------------------------------------------------

const SCENARIOS = {
  /** Chat text with `client.chat.completions.stream` and a usage chunk. */
  async chat_text(openai) {
    const stream = openai.chat.completions.stream({
      model: MODEL,
      messages: [{ role: "user", content: "Hello from Node" }],
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chatChunkView(chunk));
    const final = await stream.finalChatCompletion();
    return { chunks, final };
  },

  /** Chat tool calls (`metadata.mock_scenario: tools`) with `create({stream: true})`. */
  async chat_tools(openai) {
    const stream = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Weather in Paris?" }],
      tools: [{ type: "function", function: { ...WEATHER_TOOL, type: undefined } }],
      metadata: { mock_scenario: "tools" },
      store: true,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    const calls = {};
    for await (const chunk of stream) {
      chunks.push(chatChunkView(chunk));
      for (const call of chunk.choices[0]?.delta?.tool_calls ?? []) {
        const slot = (calls[call.index] ??= { id: null, name: "", arguments: "" });
        slot.id = call.id ?? slot.id;
        slot.name += call.function?.name ?? "";
        slot.arguments += call.function?.arguments ?? "";
      }
    }
    const parsed = Object.values(calls).map((c) => ({ ...c, arguments: JSON.parse(c.arguments) }));
    return { chunks, tool_calls: parsed };
  },

  /** A chat refusal (`metadata.mock_scenario: refusal`): `delta.refusal`, not content. */
  async chat_refusal(openai) {
    const stream = openai.chat.completions.stream({
      model: MODEL,
      messages: [{ role: "user", content: "Something forbidden" }],
      metadata: { mock_scenario: "refusal" },
      store: true,
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chatChunkView(chunk));
    const final = await stream.finalChatCompletion();
    return { chunks, refusal: final.choices[0].message.refusal, final };
  },

  /** `client.responses.stream`: every event's type and sequence number, and the final Response. */
  async responses_stream(openai) {
    return responsesStream(openai, { input: "Hello from Node" });
  },

  /** A longer Responses stream (what the fault-injection runs cut and resume). */
  async responses_long(openai) {
    return responsesStream(openai, {
      input: "Tell me a long story",
      metadata: { mock_scenario: "long:60" },
    });
  },

  /** Responses function calls (`metadata.mock_scenario: tools`), streamed. */
  async responses_tools(openai) {
    const result = await responsesStream(openai, {
      input: "Weather in Paris?",
      tools: [WEATHER_TOOL],
      metadata: { mock_scenario: "tools" },
    });
    const calls = result.final.output.filter((item) => item.type === "function_call");
    return { ...result, function_calls: calls.map((c) => [c.name, JSON.parse(c.arguments)]) };
  },

  /** `responses.create({background: true})`, polled with `retrieve` until it is terminal. */
  async background(openai) {
    const created = await openai.responses.create({
      model: MODEL,
      input: "Hello in the background",
      background: true,
      store: true,
    });
    const final = await pollToTerminal(openai, created.id);
    return {
      created: { id: created.id, status: created.status, background: created.background },
      same_id: final.id === created.id,
      final,
      output_text: final.output_text,
    };
  },

  /** A slow background response cancelled while it runs; retrieve then says `cancelled`. */
  async cancel(openai) {
    const created = await openai.responses.create({
      model: MODEL,
      input: "A slow story",
      background: true,
      store: true,
      metadata: { mock_scenario: "long:400", mock_token_delay_ms: "25" },
    });
    const cancelled = await openai.responses.cancel(created.id);
    const final = await pollToTerminal(openai, created.id);
    return {
      created_status: created.status,
      cancelled: { id: cancelled.id, status: cancelled.status },
      final: { id: final.id, status: final.status, background: final.background },
      same_id: cancelled.id === created.id && final.id === created.id,
    };
  },

  /** A background stream read up to sequence number K, then `retrieve(id, {stream: true,
   * starting_after: K})` for the rest: no gap, no duplicate. */
  async resume(openai) {
    const K = 4;
    const first = await openai.responses.create({
      model: MODEL,
      input: "Resume me",
      background: true,
      store: true,
      stream: true,
      metadata: { mock_scenario: "long:30" },
    });
    const before = [];
    let id = null;
    for await (const event of first) {
      before.push(eventView(event));
      id ??= event.response?.id ?? null;
      if (event.sequence_number >= K) break; // leaving the loop aborts the request
    }
    const rest = await openai.responses.retrieve(id, { stream: true, starting_after: K });
    const after = [];
    let final = null;
    for await (const event of rest) {
      after.push(eventView(event));
      if (TERMINAL.has(event.response?.status)) final = event.response;
    }
    const numbers = [...before, ...after].map((e) => e.sequence_number);
    return {
      before,
      after,
      contiguous: numbers.every((n, i) => i === 0 || n === numbers[i - 1] + 1),
      final_status: final?.status ?? null,
      final_text: final ? outputText(final) : null,
    };
  },

  /** Files: upload a PNG, list, retrieve, content, delete, then a 404 for the deleted one. */
  async files(openai) {
    const created = await openai.files.create({
      file: await toFile(PNG, "pixel.png", { type: "image/png" }),
      purpose: "vision",
    });
    const listed = [];
    for await (const file of openai.files.list({ purpose: "vision", order: "desc", limit: 100 })) {
      if (file.id === created.id) listed.push(file);
    }
    const retrieved = await openai.files.retrieve(created.id);
    const content = Buffer.from(await (await openai.files.content(created.id)).arrayBuffer());
    const deleted = await openai.files.delete(created.id);
    const gone = await expectError(openai.files.retrieve(created.id));
    return {
      created,
      listed,
      retrieved_equals_created: JSON.stringify(retrieved) === JSON.stringify(created),
      content_equals_upload: content.equals(PNG),
      content_bytes: content.length,
      deleted,
      after_delete: { class: gone.class, status: gone.status },
    };
  },

  /** A PNG cut short: the SDK raises `BadRequestError` with the server's message. */
  async bad_file(openai) {
    const outcome = await expectError(
      openai.files.create({
        file: await toFile(PNG.subarray(0, 40), "cut.png", { type: "image/png" }),
        purpose: "vision",
      }),
    );
    // A server that took it (the embedded one does not sniff) gets it deleted again.
    if (outcome.unexpected_success?.id) await openai.files.delete(outcome.unexpected_success.id);
    return outcome;
  },

  /** A wrong API key: the SDK raises `AuthenticationError`. */
  async wrong_key() {
    const wrong = client({ apiKey: "sk-not-the-token" });
    return expectError(
      wrong.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Hi" }] }),
    );
  },
};

function outputText(response) {
  return response.output
    .filter((item) => item.type === "message")
    .flatMap((item) => item.content)
    .filter((part) => part.type === "output_text")
    .map((part) => part.text)
    .join("");
}

async function responsesStream(openai, body) {
  const stream = openai.responses.stream({ model: MODEL, ...body });
  const events = [];
  let text = "";
  for await (const event of stream) {
    events.push(eventView(event));
    if (event.type === "response.output_text.delta") text += event.delta;
  }
  const final = await stream.finalResponse();
  return { events, text, final, output_text: final.output_text };
}

async function main() {
  const name = process.argv[2];
  const scenario = SCENARIOS[name];
  if (scenario === undefined) {
    process.stderr.write(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(", ")}\n`);
    process.exit(2);
  }
  const result = await scenario(client());
  process.stdout.write(`${JSON.stringify({ scenario: name, result: makeNormaliser()(result) })}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`);
  if (error instanceof OpenAI.APIError) {
    process.stderr.write(`status=${error.status} body=${JSON.stringify(error.error)}\n`);
  }
  process.exit(1);
});
