/** The JupyterHub side of the service: the hub REST client and its types. */
export type { HubClient, HubServer, HubUser, ListUsersOptions, TokenOwner, WaitOptions } from './hub-client.js';
export { HttpHubClient, type HttpHubClientOptions } from './http-hub-client.js';
export { serverOfToken } from './hub-models.js';
