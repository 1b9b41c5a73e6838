// The official OpenAI Node SDK against the service, as a Node app would use it:
//   node sdk_check.mjs BASE_URL API_KEY ENGLISH_AUDIO SPANISH_AUDIO
// Prints one JSON object with what each call returned; tests/test_e2e_node_sdk.py checks it.
import fs from "node:fs";
import OpenAI, { toFile } from "openai";

const [baseURL, apiKey, english, spanish] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 300_000 });
const sdk = JSON.parse(fs.readFileSync(new URL("node_modules/openai/package.json", import.meta.url)));
const out = { sdk: sdk.version };

out.models = (await client.models.list()).data.map((m) => m.id);

out.json = await client.audio.transcriptions.create({
  file: fs.createReadStream(english),
  model: "whisper-1",
});

out.verbose = await client.audio.transcriptions.create({
  file: await toFile(fs.readFileSync(english), "speech.flac"),
  model: "whisper-1",
  response_format: "verbose_json",
  timestamp_granularities: ["word", "segment"],
});

out.stream = [];
const stream = await client.audio.transcriptions.create({
  file: fs.createReadStream(english),
  model: "whisper-1",
  stream: true,
});
for await (const event of stream) out.stream.push(event);

out.translation = await client.audio.translations.create({
  file: fs.createReadStream(spanish),
  model: "base",
});

try {
  await client.audio.transcriptions.create({
    file: await toFile(Buffer.from("not audio at all"), "a.mp3"),
    model: "whisper-1",
  });
  out.bad = null;
} catch (error) {
  out.bad = { status: error.status, name: error.constructor.name, message: error.message };
}

process.stdout.write(JSON.stringify(out));
