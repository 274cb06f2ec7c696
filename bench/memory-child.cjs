// Runs the bundled consumer once on an event file in a fresh process and prints its peak memory (max RSS).
// Usage: node bench/memory-child.cjs <bundle.js> <event.json>   (DB_* in the environment)
const { readFileSync } = require('node:fs');

async function main() {
  const [bundle, eventFile] = process.argv.slice(2);
  const { handler } = require(bundle);
  const event = JSON.parse(readFileSync(eventFile, 'utf8'));
  const context = { awsRequestId: 'bench', getRemainingTimeInMillis: () => 900000 };
  process.env.IS_LOCAL = 'true'; // close the connection afterwards, so that the process exits
  const response = await handler(event, context);
  if (response.batchItemFailures.length > 0) throw new Error('records failed');
  console.log(JSON.stringify({ maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024) }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
