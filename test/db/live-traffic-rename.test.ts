import { liveTrafficSuite } from '../helpers/live-traffic.js';

liveTrafficSuite('rename');
