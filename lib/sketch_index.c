/*
 * sketch_index.c - the OpenTelemetry exponential-histogram index mapping:
 * which bucket a value falls in at a scale, and where a bucket starts and ends.
 *
 * Bit-exact, without log() per insert: a value's mantissa is compared
 * against a constant table of the 1,025 boundaries 2^(k/1024), which serves
 * every scale in [0, 10]; scales 11-20 use long-double boundaries, negative
 * scales only the exponent. Split out of sketch.c so that the stores, merge
 * and decoder there read without 330 lines of constants in the way; the hot
 * path (vt__sketch_map_index) is inline in sketch_index.h.
 */
#include "sketch_index.h"

#include <float.h>
#include <math.h>

#include "sketch.h"

/* B[k] = floor(2^(k/1024) * 2^52) - 2^52: the boundary 2^(k/1024) as the
 * 52-bit mantissa of a double in [1, 2]; generated with 60-digit decimal
 * arithmetic (every fractional part checked to be > 1e-12 from an integer). */
const uint64_t vt__sketch_bound[1025] = {
    0x0000000000000ull, 0x002c605e2e8ceull, 0x0058c86da1c09ull, 0x0085382faef83ull,
    0x00b1afa5abcbeull, 0x00de2ed0ee0f4ull, 0x010ab5b2cbd11ull, 0x0137444c9b5b4ull,
    0x0163da9fb3335ull, 0x019078ad6a19eull, 0x01bd1e77170b4ull, 0x01e9cbfe113eeull,
    0x02168143b0280ull, 0x02433e494b754ull, 0x027003103b10dull, 0x029ccf99d720aull,
    0x02c9a3e778060ull, 0x02f67ffa765e5ull, 0x032363d42b027ull, 0x03504f75ef071ull,
    0x037d42e11bbccull, 0x03aa3e170aafdull, 0x03d7411915a8aull, 0x04044be896ab6ull,
    0x04315e86e7f84ull, 0x045e78f5640b9ull, 0x048b9b35659d8ull, 0x04b8c54847a27ull,
    0x04e5f72f654b1ull, 0x051330ec1a03full, 0x0540727fc1761ull, 0x056dbbebb786bull,
    0x059b0d3158574ull, 0x05c866520045aull, 0x05f5c74f0bec2ull, 0x06233029d8216ull,
    0x0650a0e3c1f88ull, 0x067e197e26c14ull, 0x06ab99fa6407bull, 0x06d92259d794cull,
    0x0706b29ddf6ddull, 0x07344ac7d9d50ull, 0x0761ead925492ull, 0x078f92d32085dull,
    0x07bd42b72a836ull, 0x07eafa86a2771ull, 0x0818ba42e7d2full, 0x084681ed5a461ull,
    0x0874518759bc8ull, 0x08a22912465f1ull, 0x08d0088f8093full, 0x08fdf00068fe2ull,
    0x092bdf66607dfull, 0x0959d6c2c830dull, 0x0987d61701715ull, 0x09b5dd646dd76ull,
    0x09e3ecac6f383ull, 0x0a1203f067a63ull, 0x0a402331b9715ull, 0x0a6e4a71c726dull,
    0x0a9c79b1f3919ull, 0x0acab0f3a1b9bull, 0x0af8f03834e52ull, 0x0b27378110973ull,
    0x0b5586cf9890full, 0x0b83de2530d11ull, 0x0bb23d833d93eull, 0x0be0a4eb2353bull,
    0x0c0f145e46c85ull, 0x0c3d8bde0ce79ull, 0x0c6c0b6bdae52ull, 0x0c9a930916329ull,
    0x0cc922b7247f7ull, 0x0cf7ba776bb94ull, 0x0d265a4b520b9ull, 0x0d5502343de02ull,
    0x0d83b23395debull, 0x0db26a4ac0ed4ull, 0x0de12a7b26300ull, 0x0e0ff2c62d096ull,
    0x0e3ec32d3d1a2ull, 0x0e6d9bb1be414ull, 0x0e9c7c55189c6ull, 0x0ecb6518b4874ull,
    0x0efa55fdfa9c4ull, 0x0f294f0653b45ull, 0x0f58503328e6cull, 0x0f875985e389bull,
    0x0fb66affed31aull, 0x0fe584a2afb21ull, 0x1014a66f951ceull, 0x1043d06807c2full,
    0x1073028d7233eull, 0x10a23ce13f3e2ull, 0x10d17f64d9ef1ull, 0x1100ca19ad92full,
    0x11301d0125b50ull, 0x115f781cae1faull, 0x118edb6db2dc0ull, 0x11be46f5a032cull,
    0x11edbab5e2ab5ull, 0x121d36afe70c9ull, 0x124cbae51a5c7ull, 0x127c4756e9e05ull,
    0x12abdc06c31cbull, 0x12db78f613d5bull, 0x130b1e264a0e8ull, 0x133acb98d40a1ull,
    0x136a814f204aaull, 0x139a3f4a9d922ull, 0x13ca058cbae1dull, 0x13f9d416e77aeull,
    0x1429aaea92ddfull, 0x14598a092ccb7ull, 0x1489717425437ull, 0x14b9612cec860ull,
    0x14e95934f312dull, 0x1519598da9a99ull, 0x154962388149eull, 0x15797336eb332ull,
    0x15a98c8a58e51ull, 0x15d9ae343c1f2ull, 0x1609d83606e11ull, 0x163a0a912b6acull,
    0x166a45471c3c2ull, 0x169a88594c157ull, 0x16cad3c92df73ull, 0x16fb279835223ull,
    0x172b83c7d517aull, 0x175be85981992ull, 0x178c554eaea89ull, 0x17bccaa8d0888ull,
    0x17ed48695bbc0ull, 0x181dce91c5069ull, 0x184e5d23816c8ull, 0x187ef4200632aull,
    0x18af9388c8de9ull, 0x18e03b5f3f36aull, 0x1910eba4df41full, 0x1941a45b1f487ull,
    0x1972658375d2full, 0x19a32f1f59ab4ull, 0x19d4013041dc1ull, 0x1a04dbb7a5b12ull,
    0x1a35beb6fcb75ull, 0x1a66aa2fbebc6ull, 0x1a979e2363cf8ull, 0x1ac89a936440cull,
    0x1af99f8138a1cull, 0x1b2aacee59c52ull, 0x1b5bc2dc40bf0ull, 0x1b8ce14c66e4cull,
    0x1bbe084045cd3ull, 0x1bef37b95750bull, 0x1c206fb91588full, 0x1c51b040fad15ull,
    0x1c82f95281c6bull, 0x1cb44aef2547aull, 0x1ce5a51860745ull, 0x1d1707cfaeaecull,
    0x1d4873168b9aaull, 0x1d79e6ee731d6ull, 0x1dab6358e15e7ull, 0x1ddce85752c71ull,
    0x1e0e75eb44026ull, 0x1e400c1631fdbull, 0x1e71aad999e82ull, 0x1ea35236f9330ull,
    0x1ed5022fcd91cull, 0x1f06bac594fa0ull, 0x1f387bf9cda38ull, 0x1f6a45cdf6085ull,
    0x1f9c18438ce4cull, 0x1fcdf35c11379ull, 0x1fffd7190241eull, 0x2031c37bdf872ull,
    0x2063b88628cd6ull, 0x2095b6395e1d2ull, 0x20c7bc96ffc17ull, 0x20f9cba08e483ull,
    0x212be3578a819ull, 0x215e03bd7580cull, 0x21902cd3d09b8ull, 0x21c25e9c1d6a9ull,
    0x21f49917ddc96ull, 0x2226dc4893d63ull, 0x2259282fc1f27ull, 0x228b7cceeac24ull,
    0x22bdda27912d1ull, 0x22f0403b385d2ull, 0x2322af0b63bffull, 0x2355269997061ull,
    0x2387a6e756238ull, 0x23ba2ff6254f3ull, 0x23ecc1c789039ull, 0x241f5c5d05fe5ull,
    0x2451ffb82140aull, 0x2484abda600efull, 0x24b760c547f15ull, 0x24ea1e7a5eb34ull,
    0x251ce4fb2a63full, 0x254fb44931560ull, 0x25828c65fa1ffull, 0x25b56d530b9bcull,
    0x25e85711ece75ull, 0x261b49a425644ull, 0x264e450b3cb81ull, 0x26814948bacc2ull,
    0x26b4565e27cddull, 0x26e76c4d0c2e5ull, 0x271a8b16f0a2full, 0x274db2bd5e253ull,
    0x2780e341ddf29ull, 0x27b41ca5f98cbull, 0x27e75eeb3ab98ull, 0x281aaa132b832ull,
    0x284dfe1f56380ull, 0x28815b11456b0ull, 0x28b4c0ea83f35ull, 0x28e82fac9cec9ull,
    0x291ba7591bb6full, 0x294f27f18bf72ull, 0x2982b17779965ull, 0x29b643ec70c27ull,
    0x29e9df51fdee1ull, 0x2a1d83a9add07ull, 0x2a5130f50d65bull, 0x2a84e735a9eebull,
    0x2ab8a66d10f12ull, 0x2aec6e9cd037bull, 0x2b203fc675d1full, 0x2b5419eb90147ull,
    0x2b87fd0dad98full, 0x2bbbe92e5d3e3ull, 0x2befde4f2e280ull, 0x2c23dc71afbf7ull,
    0x2c57e39771b2eull, 0x2c8bf3c203f5full, 0x2cc00cf2f6c17ull, 0x2cf42f2bda93dull,
    0x2d285a6e4030bull, 0x2d5c8ebbb8a15ull, 0x2d90cc15d5346ull, 0x2dc5127e277e2ull,
    0x2df961f641589ull, 0x2e2dba7fb4e32ull, 0x2e621c1c14833ull, 0x2e9686ccf2e3aull,
    0x2ecafa93e2f56ull, 0x2eff777277ef0ull, 0x2f33fd6a454d1ull, 0x2f688c7cded22ull,
    0x2f9d24abd886aull, 0x2fd1c5f8c6b92ull, 0x300670653dfe4ull, 0x303b23f2d330aull,
    0x306fe0a31b715ull, 0x30a4a677ac276ull, 0x30d975721b004ull, 0x310e4d93fdefbull,
    0x31432edeeb2fdull, 0x3178195479412ull, 0x31ad0cf63eeabull, 0x31e209c5d339full,
    0x32170fc4cd831ull, 0x324c1ef4c560aull, 0x3281375752b3full, 0x32b658ee0da53ull,
    0x32eb83ba8ea31ull, 0x3320b7be6e633ull, 0x3355f4fb45e20ull, 0x338b3b72ae62dull,
    0x33c08b26416ffull, 0x33f5e41798daaull, 0x342b46484ebb3ull, 0x3460b1b9fd711ull,
    0x3496266e3fa2cull, 0x34cba466b03e0ull, 0x35012ba4ea77cull, 0x3536bc2a89cc4ull,
    0x356c55f929ff0ull, 0x35a1f912671b1ull, 0x35d7a577dd72bull, 0x360d5b2b299fcull,
    0x36431a2de883aull, 0x3678e281b7475ull, 0x36aeb428335b4ull, 0x36e48f22fa77bull,
    0x371a7373aa9caull, 0x3750611be211cull, 0x3786581d3f668ull, 0x37bc587961726ull,
    0x37f26231e7549ull, 0x3828754870746ull, 0x385e91be9c811ull, 0x3894b7960b71eull,
    0x38cae6d05d865ull, 0x39011f6f3345full, 0x393761742d808ull, 0x396dace0ed4e0ull,
    0x39a401b7140eeull, 0x39da5ff8436bcull, 0x3a10c7a61d55bull, 0x3a4738c244063ull,
    0x3a7db34e59ff6ull, 0x3ab4374c020bdull, 0x3aeac4bcdf3e9ull, 0x3b215ba294f39ull,
    0x3b57fbfec6cf4ull, 0x3b8ea5d318beeull, 0x3bc559212ef88ull, 0x3bfc15eaadfb1ull,
    0x3c32dc313a8e4ull, 0x3c69abf679c2dull, 0x3ca0853c10f28ull, 0x3cd76803a5c00ull,
    0x3d0e544ede173ull, 0x3d454a1f602d0ull, 0x3d7c4976d27f9ull, 0x3db35256dbd67ull,
    0x3dea64c123422ull, 0x3e2180b7501cbull, 0x3e58a63b0a09aull, 0x3e8fd54df8f5bull,
    0x3ec70df1c5174ull, 0x3efe502816ee3ull, 0x3f359bf29743eull, 0x3f6cf152ef2b7ull,
    0x3fa4504ac801bull, 0x3fdbb8dbcb6d1ull, 0x40132b07a35deull, 0x404aa6cffa0e5ull,
    0x40822c367a024ull, 0x40b9bb3cce07bull, 0x40f153e4a1369ull, 0x4128f62f9ef0eull,
    0x4160a21f72e29ull, 0x419857b5c901full, 0x41d016f44d8f4ull, 0x4207dfdcad153ull,
    0x423fb27094689ull, 0x42778eb1b0a8aull, 0x42af74a1af3f1ull, 0x42e764423ddfcull,
    0x431f5d950a896ull, 0x4357609bc3850ull, 0x438f6d5817662ull, 0x43c783cbb50b4ull,
    0x43ffa3f84b9d4ull, 0x4437cddf8a8fdull, 0x4470018321a19ull, 0x44a83ee4c0dbdull,
    0x44e086061892dull, 0x4518d6e8d965bull, 0x4551318eb43ebull, 0x458995f95a531ull,
    0x45c2042a7d231ull, 0x45fa7c23ce7a4ull, 0x4632fde7006f3ull, 0x466b8975c563eull,
    0x46a41ed1d0057ull, 0x46dcbdfcd34c8ull, 0x471566f8827cfull, 0x474e19c691265ull,
    0x4786d668b3236ull, 0x47bf9ce09c9abull, 0x47f86d3001fe5ull, 0x48314758980beull,
    0x486a2b5c13cd0ull, 0x48a3193c2a96bull, 0x48dc10fa920a1ull, 0x491512990013full,
    0x494e1e192aed1ull, 0x4987337cc91a4ull, 0x49c052c5916c4ull, 0x49f97bf53affcull,
    0x4a32af0d7d3deull, 0x4a6bec100fdbaull, 0x4aa532feaada5ull, 0x4ade83db0687aull,
    0x4b17dea6db7d6ull, 0x4b514363e2a20ull, 0x4b8ab213d5282ull, 0x4bc42ab86c8f0ull,
    0x4bfdad5362a27ull, 0x4c3739e6717aaull, 0x4c70d073537caull, 0x4caa70fbc35a0ull,
    0x4ce41b817c114ull, 0x4d1dd00638ed7ull, 0x4d578e8bb586bull, 0x4d915713adc1eull,
    0x4dcb299fddd0dull, 0x4e05063202327ull, 0x4e3eeccbd7b2aull, 0x4e78dd6f1b6a6ull,
    0x4eb2d81d8abfeull, 0x4eecdcd8e3669ull, 0x4f26eba2e35f0ull, 0x4f61047d48f73ull,
    0x4f9b2769d2ca6ull, 0x4fd5546a3fc16ull, 0x500f8b804f126ull, 0x5049ccadc0412ull,
    0x508417f4531eeull, 0x50be6d55c7ca9ull, 0x50f8ccd3deb0cull, 0x51333670588bfull,
    0x516daa2cf6641ull, 0x51a8280b798f4ull, 0x51e2b00da3b13ull, 0x521d423536bbdull,
    0x5257de83f4eeeull, 0x529284fba0d84ull, 0x52cd359dfd53cull, 0x5307f06ccd8baull,
    0x5342b569d4f81ull, 0x537d8496d75fcull, 0x53b85df598d77ull, 0x53f34187ddc27ull,
    0x542e2f4f6ad27ull, 0x5469274e05078ull, 0x54a4298571b05ull, 0x54df35f7766a3ull,
    0x551a4ca5d920eull, 0x55556d92600f1ull, 0x559098bed1bdfull, 0x55cbce2cf505aull,
    0x56070dde910d1ull, 0x564257d56d4a2ull, 0x567dac1351818ull, 0x56b90a9a05c71ull,
    0x56f4736b527daull, 0x572fe68900572ull, 0x576b63f4d854cull, 0x57a6ebb0a3c6dull,
    0x57e27dbe2c4ceull, 0x581e1a1f3bd60ull, 0x5859c0d59ca07ull, 0x589571e31939full,
    0x58d12d497c7fdull, 0x590cf30a919ecull, 0x5948c32824134ull, 0x59849da3ffa95ull,
    0x59c0827ff07cbull, 0x59fc71bdc2f8eull, 0x5a386b5f43d92ull, 0x5a746f664028aull,
    0x5ab07dd485429ull, 0x5aec96abe0d1full, 0x5b28b9ee20d1dull, 0x5b64e79d138d7ull,
    0x5ba11fba87a02ull, 0x5bdd62484bf56ull, 0x5c19af482fc8eull, 0x5c5606bc02a6cull,
    0x5c9268a5946b7ull, 0x5cced506b543aull, 0x5d0b4be135acbull, 0x5d47cd36e6746ull,
    0x5d84590998b92ull, 0x5dc0ef5b1de9eull, 0x5dfd902d47c64ull, 0x5e3a3b81e85ecull,
    0x5e76f15ad2148ull, 0x5eb3b1b9d7999ull, 0x5ef07ca0cbf0full, 0x5f2d5211826e7ull,
    0x5f6a320dceb70ull, 0x5fa71c9784c0aull, 0x5fe411b078d26ull, 0x6021115a7f848ull,
    0x605e1b976dc08ull, 0x609b306918c13ull, 0x60d84fd15612aull, 0x611579d1fb925ull,
    0x6152ae6cdf6f4ull, 0x618feda3d829eull, 0x61cd3778bc944ull, 0x620a8bed63d1full,
    0x6247eb03a5584ull, 0x628554bd58ee5ull, 0x62c2c91c56acdull, 0x6300482276fe8ull,
    0x633dd1d1929fdull, 0x637b662b829f5ull, 0x63b90532205d7ull, 0x63f6aee7458ccull,
    0x6434634ccc31full, 0x647222648ea3dull, 0x64afec30678b6ull, 0x64edc0b231e40ull,
    0x652b9febc8fb6ull, 0x656989df08718ull, 0x65a77e8dcc38full, 0x65e57df9f096bull,
    0x6623882552224ull, 0x66619d11cdc5eull, 0x669fbcc140be7ull, 0x66dde735889b7ull,
    0x671c1c70833f5ull, 0x675a5c740edf4ull, 0x6798a7420a035ull, 0x67d6fcdc5386aull,
    0x68155d44ca973ull, 0x6853c87d4eb61ull, 0x68923e87bfb7aull, 0x68d0bf65fdc33ull,
    0x690f4b19e9538ull, 0x694de1a563366ull, 0x698c830a4c8d3ull, 0x69cb2f4a86ccaull,
    0x6a09e667f3bccull, 0x6a48a86475795ull, 0x6a877541ee718ull, 0x6ac64d0241682ull,
    0x6b052fa75173eull, 0x6b441d3301feeull, 0x6b8315a736c74ull, 0x6bc21905d3df0ull,
    0x6c012750bdabeull, 0x6c404089d8e7dull, 0x6c7f64b30aa08ull, 0x6cbe93ce38380ull,
    0x6cfdcddd47645ull, 0x6d3d12e21e2fbull, 0x6d7c62dea2f8aull, 0x6dbbbdd4bc720ull,
    0x6dfb23c651a2eull, 0x6e3a94b549e71ull, 0x6e7a10a38cee7ull, 0x6eb9979302bddull,
    0x6ef9298593ae4ull, 0x6f38c67d286dcull, 0x6f786e7ba9feeull, 0x6fb8218301b90ull,
    0x6ff7df9519483ull, 0x7037a8b3daadbull, 0x70777ce1303f5ull, 0x70b75c1f04a84ull,
    0x70f7466f42e87ull, 0x71373bd3d6551ull, 0x71773c4eaa987ull, 0x71b747e1abb24ull,
    0x71f75e8ec5f73ull, 0x72378057e611aull, 0x7277ad3ef9010ull, 0x72b7e545ec1a8ull,
    0x72f8286ead089ull, 0x733876bb29cb7ull, 0x7378d02d50b8full, 0x73b934c7107c7ull,
    0x73f9a48a58173ull, 0x743a1f7916e04ull, 0x747aa5953c848ull, 0x74bb36e0b906cull,
    0x74fbd35d7cbfdull, 0x753c7b0d785e8ull, 0x757d2df29ce7cull, 0x75bdec0edbb6aull,
    0x75feb564267c8ull, 0x763f89f46f40full, 0x768069c1a861dull, 0x76c154cdc4937ull,
    0x77024b1ab6e09ull, 0x77434caa72aa7ull, 0x7784597eeba8eull, 0x77c5719a15ea5ull,
    0x780694fde5d3full, 0x7847c3ac50218ull, 0x7888fda749e5dull, 0x78ca42f0c88a4ull,
    0x790b938ac1cf6ull, 0x794cef772bcc8ull, 0x798e56b7fcf03ull, 0x79cfc94f2bfffull,
    0x7a11473eb0186ull, 0x7a52d08880ad9ull, 0x7a94652e958a9ull, 0x7ad60532e6d1full,
    0x7b17b0976cfdaull, 0x7b59675e20defull, 0x7b9b2988fb9ecull, 0x7bdcf719f6bd7ull,
    0x7c1ed0130c132ull, 0x7c60b47635cf8ull, 0x7ca2a4456e7a2ull, 0x7ce49f82b0f24ull,
    0x7d26a62ff86f0ull, 0x7d68b84f407f7ull, 0x7daad5e2850abull, 0x7decfeebc24feull,
    0x7e2f336cf4e62ull, 0x7e71736819bcdull, 0x7eb3bedf2e1b9ull, 0x7ef615d42fa24ull,
    0x7f3878491c490ull, 0x7f7ae63ff2609ull, 0x7fbd5fbab091full, 0x7fffe4bb55debull,
    0x80427543e1a11ull, 0x80851156538bdull, 0x80c7b8f4abaa8ull, 0x810a6c20ea616ull,
    0x814d2add106d9ull, 0x818ff52b1ee50ull, 0x81d2cb0d1736aull, 0x8215ac84fb2a5ull,
    0x82589994cce12ull, 0x829b923e8ed52ull, 0x82de968443d9aull, 0x8321a667ef1b2ull,
    0x8364c1eb941f7ull, 0x83a7e91136c5dull, 0x83eb1bdadb46dull, 0x842e5a4a86349ull,
    0x8471a4623c7acull, 0x84b4fa24035eaull, 0x84f85b91e07f1ull, 0x853bc8add9d4bull,
    0x857f4179f5b20ull, 0x85c2c5f83ac35ull, 0x8606562ab00ecull, 0x8649f2135cf48ull,
    0x868d99b4492ecull, 0x86d14d0f7cd1dull, 0x87150c27004c2ull, 0x8758d6fcdc665ull,
    0x879cad931a436ull, 0x87e08febc3608ull, 0x88247e08e1956ull, 0x886877ec7f143ull,
    0x88ac7d98a6699ull, 0x88f08f0f627cbull, 0x8934ac52be8f7ull, 0x8978d564c63e6ull,
    0x89bd0a478580full, 0x8a014afd08a93ull, 0x8a4597875c644ull, 0x8a89efe88dba1ull,
    0x8ace5422aa0dbull, 0x8b12c437bf1d3ull, 0x8b574029db01eull, 0x8b9bc7fb0c301ull,
    0x8be05bad61778ull, 0x8c24fb42ea033ull, 0x8c69a6bdb5597ull, 0x8cae5e1fd35c3ull,
    0x8cf3216b5448bull, 0x8d37f0a248b7full, 0x8d7ccbc6c19e6ull, 0x8dc1b2dad04c3ull,
    0x8e06a5e0866d8ull, 0x8e4ba4d9f60a0ull, 0x8e90afc931857ull, 0x8ed5c6b04b9f5ull,
    0x8f1ae99157736ull, 0x8f60186e68793ull, 0x8fa553499284aull, 0x8fea9a24e9c5bull,
    0x902fed0282c8aull, 0x90754be472760ull, 0x90bab6ccce12bull, 0x91002dbdab403ull,
    0x9145b0b91ffc5ull, 0x918b3fc142a19ull, 0x91d0dad829e6full, 0x921681ffece04ull,
    0x925c353aa2fe1ull, 0x92a1f48a640dbull, 0x92e7bff148395ull, 0x932d977168082ull,
    0x93737b0cdc5e4ull, 0x93b96ac5be7d0ull, 0x93ff669e2802bull, 0x94456e9832eadull,
    0x948b82b5f98e4ull, 0x94d1a2f996a33ull, 0x9517cf65253d0ull, 0x955e07fac0cccull,
    0x95a44cbc8520eull, 0x95ea9dac8e658ull, 0x9630faccf9243ull, 0x9677641fe2445ull,
    0x96bdd9a7670b2ull, 0x97045b65a51b9ull, 0x974ae95cba768ull, 0x9791838ec57aaull,
    0x97d829fde4e4full, 0x981edcac37d04ull, 0x98659b9bddb5bull, 0x98ac66cef66c7ull,
    0x98f33e47a22a2ull, 0x993a220801828ull, 0x9981121235680ull, 0x99c80e685f2b4ull,
    0x9a0f170ca07b9ull, 0x9a562c011b66dull, 0x9a9d4d47f2597ull, 0x9ae47ae3481ecull,
    0x9b2bb4d53fe0cull, 0x9b72fb1ffd285ull, 0x9bba4dc5a3dd3ull, 0x9c01acc858462ull,
    0x9c49182a3f090ull, 0x9c908fed7d2aaull, 0x9cd81414380f2ull, 0x9d1fa4a09579dull,
    0x9d674194bb8d4ull, 0x9daeeaf2d0cb8ull, 0x9df6a0bcfc15eull, 0x9e3e62f564ad4ull,
    0x9e86319e32323ull, 0x9ece0cb98ca4aull, 0x9f15f4499c647ull, 0x9f5de8508a311ull,
    0x9fa5e8d07f29dull, 0x9fedf5cba4ce0ull, 0xa0360f4424fcaull, 0xa07e353c29f50ull,
    0xa0c667b5de564ull, 0xa10ea6b36d1fdull, 0xa156f23701b15ull, 0xa19f4a42c7ca8ull,
    0xa1e7aed8eb8bbull, 0xa2301ffb99756ull, 0xa2789dacfe68bull, 0xa2c127ef47a74ull,
    0xa309bec4a2d33ull, 0xa352622f3def6ull, 0xa39b1231475f7ull, 0xa3e3ceccede7bull,
    0xa42c980460ad7ull, 0xa4756dd9cf36dull, 0xa4be504f696b0ull, 0xa5073f675f923ull,
    0xa5503b23e255cull, 0xa599438722c03ull, 0xa5e25893523d4ull, 0xa62b7a4aa29a1ull,
    0xa674a8af46052ull, 0xa6bde3c36f0e5ull, 0xa7072b8950a72ull, 0xa75080031e22aull,
    0xa799e1330b358ull, 0xa7e34f1b4bf61ull, 0xa82cc9be14dcaull, 0xa876511d9ac32ull,
    0xa8bfe53c12e58ull, 0xa909861bb2e1cull, 0xa95333beb0b7dull, 0xa99cee2742c9dull,
    0xa9e6b5579fdbfull, 0xaa308951ff14cull, 0xaa7a6a1897fd2ull, 0xaac457ada2803ull,
    0xab0e521356ebaull, 0xab58594bedefaull, 0xaba26d59a09eeull, 0xabec8e3ea86edull,
    0xac36bbfd3f379ull, 0xac80f6979f340ull, 0xaccb3e100301dull, 0xad159268a5a1bull,
    0xad5ff3a3c2774ull, 0xadaa61c395492ull, 0xadf4dcca5a413ull, 0xae3f64ba4dec5ull,
    0xae89f995ad3adull, 0xaed49b5eb5802ull, 0xaf1f4a17a4734ull, 0xaf6a05c2b82e9ull,
    0xafb4ce622f2feull, 0xafffa3f84858cull, 0xb04a868742ee4ull, 0xb09576115e993ull,
    0xb0e07298db665ull, 0xb12b7c1ff9c61ull, 0xb17692a8fa8cdull, 0xb1c1b6361ef30ull,
    0xb20ce6c9a8952ull, 0xb2582465d973bull, 0xb2a36f0cf3f39ull, 0xb2eec6c13addcull,
    0xb33a2b84f15faull, 0xb3859d5a5b0b0ull, 0xb3d11c43bbd61ull, 0xb41ca843581baull,
    0xb468415b749b0ull, 0xb4b3e78e56785ull, 0xb4ff9ade433c5ull, 0xb54b5b4d80d49ull,
    0xb59728de55939ull, 0xb5e303930830bull, 0xb62eeb6ddfc86ull, 0xb67ae07123dc2ull,
    0xb6c6e29f1c52aull, 0xb712f1fa1177aull, 0xb75f0e844bfc6ull, 0xb7ab384014f75ull,
    0xb7f76f2fb5e46ull, 0xb843b35578a51ull, 0xb89004b3a7803ull, 0xb8dc634c8d228ull,
    0xb928cf22749e3ull, 0xb9754837a96b6ull, 0xb9c1ce8e77680ull, 0xba0e62292ad7dull,
    0xba5b030a10649ull, 0xbaa7b133751e2ull, 0xbaf46ca7a67a7ull, 0xbb413568f2559ull,
    0xbb8e0b79a6f1eull, 0xbbdaeedc12f82ull, 0xbc27df9285775ull, 0xbc74dd9f4de4full,
    0xbcc1e904bc1d2ull, 0xbd0f01c520627ull, 0xbd5c27e2cb5e4ull, 0xbda95b600e20aull,
    0xbdf69c3f3a206ull, 0xbe43ea82a13b5ull, 0xbe91462c95b5full, 0xbedeaf3f6a3c2ull,
    0xbf2c25bd71e08ull, 0xbf79a9a9001d1ull, 0xbfc73b0468d2full, 0xc014d9d2004a9ull,
    0xc06286141b33cull, 0xc0b03fcd0ea5cull, 0xc0fe06ff301f4ull, 0xc14bdbacd5869ull,
    0xc199bdd85529cull, 0xc1e7ad8405be5ull, 0xc235aab23e61dull, 0xc283b56556999ull,
    0xc2d1cd9fa652bull, 0xc31ff36385e28ull, 0xc36e26b34e065ull, 0xc3bc679157e37ull,
    0xc40ab5fffd07aull, 0xc45912019768bull, 0xc4a77b988164full, 0xc4f5f2c715c30ull,
    0xc544778fafb22ull, 0xc59309f4aac9full, 0xc5e1a9f8630acull, 0xc630579d34ddcull,
    0xc67f12e57d14bull, 0xc6cddbd398ea3ull, 0xc71cb269e601eull, 0xc76b96aac2685ull,
    0xc7ba88988c932ull, 0xc8098835a3611ull, 0xc8589584661a0ull, 0xc8a7b087346f4ull,
    0xc8f6d9406e7b5ull, 0xc9460fb274c22ull, 0xc99553dfa8313ull, 0xc9e4a5ca6a1f8ull,
    0xca3405751c4daull, 0xca8372e220e60ull, 0xcad2ee13da7cbull, 0xcb22770cac0f9ull,
    0xcb720dcef9069ull, 0xcbc1b25d25337ull, 0xcc1164b994d22ull, 0xcc6124e6ac88bull,
    0xccb0f2e6d1674ull, 0xcd00cebc68e87ull, 0xcd50b869d8f0full, 0xcda0aff187d01ull,
    0xcdf0b555dc3f9ull, 0xce40c8993d63cull, 0xce90e9be12cb9ull, 0xcee118c6c4709ull,
    0xcf3155b5bab73ull, 0xcf81a08d5e6ecull, 0xcfd1f95018d16ull, 0xd022600053845ull,
    0xd072d4a07897bull, 0xd0c35732f2870ull, 0xd113e7ba2c38cull, 0xd164863890fedull,
    0xd1b532b08c968ull, 0xd205ed248b286ull, 0xd256b596f948bull, 0xd2a78c0a43f72ull,
    0xd2f87080d89f1ull, 0xd34962fd2517aull, 0xd39a638197a3bull, 0xd3eb72109ef21ull,
    0xd43c8eacaa1d6ull, 0xd48db95828ac6ull, 0xd4def2158a91eull, 0xd53038e7402cdull,
    0xd5818dcfba487ull, 0xd5d2f0d16a1c2ull, 0xd62461eec14beull, 0xd675e12a31e7full,
    0xd6c76e862e6d3ull, 0xd7190a0529c50ull, 0xd76ab3a99745aull, 0xd7bc6b75eab1eull,
    0xd80e316c98397ull, 0xd86005901478eull, 0xd8b1e7e2d479cull, 0xd903d8674db2bull,
    0xd955d71ff6075ull, 0xd9a7e40f43c89ull, 0xd9f9ff37adb49ull, 0xda4c289baaf6eull,
    0xda9e603db3285ull, 0xdaf0a6203e4f5ull, 0xdb42fa45c4dfdull, 0xdb955cb0bfbb6ull,
    0xdbe7cd63a8314ull, 0xdc3a4c60f7fe9ull, 0xdc8cd9ab294e4ull, 0xdcdf7544b6b91ull,
    0xdd321f301b460ull, 0xdd84d76fd269eull, 0xddd79e065807dull, 0xde2a72f628712ull,
    0xde7d5641c0657ull, 0xded047eb9d12cull, 0xdf2347f63c158ull, 0xdf7656641b78bull,
    0xdfc97337b9b5eull, 0xe01c9e7395b55ull, 0xe06fd81a2ece0ull, 0xe0c3202e04c5dull,
    0xe11676b197d16ull, 0xe169dba768949ull, 0xe1bd4f11f8220ull, 0xe210d0f3c7fbaull,
    0xe264614f5a128ull, 0xe2b8002730c71ull, 0xe30bad7dcee90ull, 0xe35f6955b7b77ull,
    0xe3b333b16ee11ull, 0xe4070c9378842ull, 0xe45af3fe592e7ull, 0xe4aee9f495ddcull,
    0xe502ee78b3ff6ull, 0xe557018d3970aull, 0xe5ab2334ac7edull, 0xe5ff537193e74ull,
    0xe653924676d75ull, 0xe6a7dfb5dcecaull, 0xe6fc3bc24e350ull, 0xe750a66e532eaull,
    0xe7a51fbc74c83ull, 0xe7f9a7af3c60bull, 0xe84e3e4933c7dull, 0xe8a2e38ce53dfull,
    0xe8f7977cdb73full, 0xe94c5a1ba18bcull, 0xe9a12b6bc3181ull, 0xe9f60b6fcc1c7ull,
    0xea4afa2a490d9ull, 0xea9ff79dc6d13ull, 0xeaf503ccd2be5ull, 0xeb4a1eb9fa9d0ull,
    0xeb9f4867cca6eull, 0xebf480d8d786dull, 0xec49c80faa593ull, 0xec9f1e0ed4ac1ull,
    0xecf482d8e67f0ull, 0xed49f67070435ull, 0xed9f78d802dc1ull, 0xedf50a122f9e5ull,
    0xee4aaa2188510ull, 0xeea059089f2d0ull, 0xeef616ca06dd6ull, 0xef4be368527f6ull,
    0xefa1bee615a27ull, 0xeff7a945e4487ull, 0xf04da28a52e59ull, 0xf0a3aab5f6608ull,
    0xf0f9c1cb64129ull, 0xf14fe7cd31c7bull, 0xf1a61cbdf5be6ull, 0xf1fc60a046a83ull,
    0xf252b376bba97ull, 0xf2a91543ec594ull, 0xf2ff860a70c21ull, 0xf35605cce1613ull,
    0xf3ac948dd7273ull, 0xf403324feb780ull, 0xf459df15b82acull, 0xf4b09ae1d78a1ull,
    0xf50765b6e4540ull, 0xf55e3f9779ba5ull, 0xf5b5288633625ull, 0xf60c2085ad651ull,
    0xf6632798844f8ull, 0xf6ba3dc155226ull, 0xf7116302bd526ull, 0xf768975f5ac85ull,
    0xf7bfdad9cbe13ull, 0xf8172d74af6e1ull, 0xf86e8f32a4b45ull, 0xf8c600164b6dcull,
    0xf91d802243c88ull, 0xf9750f592e677ull, 0xf9ccadbdac61cull, 0xfa245b525f438ull,
    0xfa7c1819e90d8ull, 0xfad3e416ec353ull, 0xfb2bbf4c0ba54ull, 0xfb83a9bbeabd1ull,
    0xfbdba3692d513ull, 0xfc33ac5677ab8ull, 0xfc8bc4866e8adull, 0xfce3ebfbb7237ull,
    0xfd3c22b8f71f1ull, 0xfd9468c0d49ccull, 0xfdecbe15f6314ull, 0xfe4522bb02e6dull,
    0xfe9d96b2a23d9ull, 0xfef619ff7c2b2ull, 0xff4eaca4391b5ull, 0xffa74ea381efcull,
    0x10000000000000ull,
};
/* T[j] = smallest k with (j << 42) <= B[k]: a first guess for the bucket
 * of a mantissa whose top 10 bits are j. */
const uint16_t vt__sketch_guess[1024] = {
    0, 2, 3, 5, 6, 8, 9, 11, 12, 13, 15, 16, 18, 19, 21, 22,
    23, 25, 26, 28, 29, 30, 32, 33, 35, 36, 38, 39, 40, 42, 43, 45,
    46, 47, 49, 50, 52, 53, 54, 56, 57, 58, 60, 61, 63, 64, 65, 67,
    68, 70, 71, 72, 74, 75, 76, 78, 79, 81, 82, 83, 85, 86, 87, 89,
    90, 91, 93, 94, 95, 97, 98, 100, 101, 102, 104, 105, 106, 108, 109, 110,
    112, 113, 114, 116, 117, 118, 120, 121, 122, 124, 125, 126, 128, 129, 130, 132,
    133, 134, 136, 137, 138, 139, 141, 142, 143, 145, 146, 147, 149, 150, 151, 153,
    154, 155, 156, 158, 159, 160, 162, 163, 164, 165, 167, 168, 169, 171, 172, 173,
    175, 176, 177, 178, 180, 181, 182, 183, 185, 186, 187, 189, 190, 191, 192, 194,
    195, 196, 197, 199, 200, 201, 202, 204, 205, 206, 207, 209, 210, 211, 212, 214,
    215, 216, 217, 219, 220, 221, 222, 224, 225, 226, 227, 229, 230, 231, 232, 234,
    235, 236, 237, 238, 240, 241, 242, 243, 245, 246, 247, 248, 250, 251, 252, 253,
    254, 256, 257, 258, 259, 260, 262, 263, 264, 265, 266, 268, 269, 270, 271, 272,
    274, 275, 276, 277, 278, 280, 281, 282, 283, 284, 286, 287, 288, 289, 290, 292,
    293, 294, 295, 296, 297, 299, 300, 301, 302, 303, 305, 306, 307, 308, 309, 310,
    312, 313, 314, 315, 316, 317, 319, 320, 321, 322, 323, 324, 326, 327, 328, 329,
    330, 331, 332, 334, 335, 336, 337, 338, 339, 341, 342, 343, 344, 345, 346, 347,
    349, 350, 351, 352, 353, 354, 355, 356, 358, 359, 360, 361, 362, 363, 364, 366,
    367, 368, 369, 370, 371, 372, 373, 374, 376, 377, 378, 379, 380, 381, 382, 383,
    385, 386, 387, 388, 389, 390, 391, 392, 393, 395, 396, 397, 398, 399, 400, 401,
    402, 403, 404, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 418, 419,
    420, 421, 422, 423, 424, 425, 426, 427, 428, 429, 431, 432, 433, 434, 435, 436,
    437, 438, 439, 440, 441, 442, 443, 444, 446, 447, 448, 449, 450, 451, 452, 453,
    454, 455, 456, 457, 458, 459, 460, 461, 463, 464, 465, 466, 467, 468, 469, 470,
    471, 472, 473, 474, 475, 476, 477, 478, 479, 480, 481, 482, 483, 485, 486, 487,
    488, 489, 490, 491, 492, 493, 494, 495, 496, 497, 498, 499, 500, 501, 502, 503,
    504, 505, 506, 507, 508, 509, 510, 511, 512, 513, 514, 515, 516, 517, 518, 519,
    520, 521, 523, 524, 525, 526, 527, 528, 529, 530, 531, 532, 533, 534, 535, 536,
    537, 538, 539, 540, 541, 542, 543, 544, 545, 546, 547, 548, 549, 550, 551, 552,
    553, 554, 555, 556, 557, 558, 559, 560, 561, 562, 562, 563, 564, 565, 566, 567,
    568, 569, 570, 571, 572, 573, 574, 575, 576, 577, 578, 579, 580, 581, 582, 583,
    584, 585, 586, 587, 588, 589, 590, 591, 592, 593, 594, 595, 596, 597, 598, 599,
    600, 600, 601, 602, 603, 604, 605, 606, 607, 608, 609, 610, 611, 612, 613, 614,
    615, 616, 617, 618, 619, 620, 621, 621, 622, 623, 624, 625, 626, 627, 628, 629,
    630, 631, 632, 633, 634, 635, 636, 637, 637, 638, 639, 640, 641, 642, 643, 644,
    645, 646, 647, 648, 649, 650, 651, 651, 652, 653, 654, 655, 656, 657, 658, 659,
    660, 661, 662, 663, 663, 664, 665, 666, 667, 668, 669, 670, 671, 672, 673, 674,
    675, 675, 676, 677, 678, 679, 680, 681, 682, 683, 684, 685, 685, 686, 687, 688,
    689, 690, 691, 692, 693, 694, 694, 695, 696, 697, 698, 699, 700, 701, 702, 703,
    703, 704, 705, 706, 707, 708, 709, 710, 711, 712, 712, 713, 714, 715, 716, 717,
    718, 719, 720, 720, 721, 722, 723, 724, 725, 726, 727, 727, 728, 729, 730, 731,
    732, 733, 734, 735, 735, 736, 737, 738, 739, 740, 741, 742, 742, 743, 744, 745,
    746, 747, 748, 749, 749, 750, 751, 752, 753, 754, 755, 755, 756, 757, 758, 759,
    760, 761, 761, 762, 763, 764, 765, 766, 767, 768, 768, 769, 770, 771, 772, 773,
    774, 774, 775, 776, 777, 778, 779, 779, 780, 781, 782, 783, 784, 785, 785, 786,
    787, 788, 789, 790, 791, 791, 792, 793, 794, 795, 796, 796, 797, 798, 799, 800,
    801, 801, 802, 803, 804, 805, 806, 806, 807, 808, 809, 810, 811, 811, 812, 813,
    814, 815, 816, 816, 817, 818, 819, 820, 821, 821, 822, 823, 824, 825, 826, 826,
    827, 828, 829, 830, 831, 831, 832, 833, 834, 835, 835, 836, 837, 838, 839, 840,
    840, 841, 842, 843, 844, 844, 845, 846, 847, 848, 849, 849, 850, 851, 852, 853,
    853, 854, 855, 856, 857, 857, 858, 859, 860, 861, 861, 862, 863, 864, 865, 865,
    866, 867, 868, 869, 869, 870, 871, 872, 873, 873, 874, 875, 876, 877, 877, 878,
    879, 880, 881, 881, 882, 883, 884, 885, 885, 886, 887, 888, 889, 889, 890, 891,
    892, 893, 893, 894, 895, 896, 896, 897, 898, 899, 900, 900, 901, 902, 903, 904,
    904, 905, 906, 907, 907, 908, 909, 910, 911, 911, 912, 913, 914, 914, 915, 916,
    917, 918, 918, 919, 920, 921, 921, 922, 923, 924, 925, 925, 926, 927, 928, 928,
    929, 930, 931, 931, 932, 933, 934, 935, 935, 936, 937, 938, 938, 939, 940, 941,
    941, 942, 943, 944, 944, 945, 946, 947, 948, 948, 949, 950, 951, 951, 952, 953,
    954, 954, 955, 956, 957, 957, 958, 959, 960, 960, 961, 962, 963, 963, 964, 965,
    966, 966, 967, 968, 969, 969, 970, 971, 972, 972, 973, 974, 975, 975, 976, 977,
    978, 978, 979, 980, 981, 981, 982, 983, 984, 984, 985, 986, 987, 987, 988, 989,
    989, 990, 991, 992, 992, 993, 994, 995, 995, 996, 997, 998, 998, 999, 1000, 1001,
    1001, 1002, 1003, 1003, 1004, 1005, 1006, 1006, 1007, 1008, 1009, 1009, 1010, 1011, 1011, 1012,
    1013, 1014, 1014, 1015, 1016, 1017, 1017, 1018, 1019, 1019, 1020, 1021, 1022, 1022, 1023, 1024,
};

/* The table lookup of sketch_index.h for scale in [11, 20], with long-double
 * boundaries: slower (log2l, exp2l), taken only at those fine scales. */
uint32_t vt__sketch_sub_index_ld(int scale, uint64_t m)
{
    long double x = 1.0L + (long double)m / 4503599627370496.0L; /* exact */
    long double n = (long double)(1u << scale);
    long double g = ceill(log2l(x) * n);
    uint32_t k = g < 1 ? 1 : (g > n ? (uint32_t)n : (uint32_t)g);
    while (k > 1 && x <= exp2l((long double)(k - 1) / n))
        k--;
    while (k < (1u << scale) && x > exp2l((long double)k / n))
        k++;
    return k;
}

int32_t vt_sketch_index(int scale, double v)
{
    if (scale < VT_SKETCH_MIN_SCALE || scale > VT_SKETCH_MAX_SCALE || !(v > 0) || !isfinite(v))
        return INT32_MIN;
    return vt__sketch_map_index(scale, v);
}

/* base^index = 2^(index / 2^scale). */
double vt_sketch_bucket_lower(int scale, int32_t index)
{
    if (scale <= 0) {
        int64_t e = (int64_t)index * ((int64_t)1 << -scale);
        return ldexp(1.0, e > 100000 ? 100000 : e < -100000 ? -100000 : (int)e);
    }
    int32_t q = vt__sketch_floor_shift(index, scale);
    int32_t r = index - q * (1 << scale);
    return (double)ldexpl(exp2l((long double)r / (long double)(1 << scale)), q);
}

double vt_sketch_bucket_upper(int scale, int32_t index)
{
    if (index == INT32_MAX)
        return INFINITY;
    return vt_sketch_bucket_lower(scale, index + 1);
}

double vt_sketch_relative_error(int scale)
{
    if (scale <= 0) {
        double inv = exp2(-exp2(-scale)); /* 1/base, no overflow at scale -10 */
        return (1 - inv) / (1 + inv);
    }
    double bm1 = expm1(M_LN2 * exp2(-scale)); /* base - 1, precise for fine scales */
    return bm1 / (bm1 + 2);
}

double vt__sketch_bucket_value(int scale, int32_t index)
{
    return vt_sketch_bucket_lower(scale, index) * (1 + vt_sketch_relative_error(scale));
}

int32_t vt__sketch_index_min(int scale)
{
    return vt__sketch_map_index(scale, 4.9406564584124654e-324);
}

int32_t vt__sketch_index_max(int scale)
{
    return vt__sketch_map_index(scale, DBL_MAX);
}
