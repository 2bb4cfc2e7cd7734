import { createServer, Server, Socket } from 'net';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { HANDLER_CLIENT_TIMEOUTS, withHandlerTimeouts } from '../../src/runtime/client-timeouts';

// A handler's AWS call whose answer never comes must fail within the request timeout (as a
// lost answer its retry path covers), not hang until the function times out, wherever it is.
let server: Server;
let port: number;
const sockets: Socket[] = [];

beforeAll(async () => {
  // Accepts connections and reads requests, but never answers.
  server = createServer((socket) => {
    sockets.push(socket);
    socket.on('data', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
});

test('a request that is never answered fails with a TimeoutError after the request timeout', async () => {
  const client = new DynamoDBClient({
    ...withHandlerTimeouts(),
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 1,
  });
  const started = Date.now();
  const error = await client.send(new GetItemCommand({ TableName: 't', Key: { id: { S: '1' } } })).then(() => undefined, (err: Error) => err);
  expect(error?.name).toBe('TimeoutError');
  // Not before the timeout: it was the request timeout that ended the call.
  expect(Date.now() - started).toBeGreaterThanOrEqual(HANDLER_CLIENT_TIMEOUTS.requestTimeout - 100);
  client.destroy();
}, 20_000);
