# Usage: python3 web/tools/make-icons.py web/src  (writes icon-192.png and icon-512.png; no dependencies)
# Draws the callvault app icon (a green disc with a white padlock on the dark page colour) as PNG.
import struct, zlib, sys
def png(n, path):
    bg=(16,24,31); green=(46,157,87); white=(240,244,247)
    rows=[]
    c=n/2; r=n*0.40
    for y in range(n):
        row=bytearray([0])
        for x in range(n):
            dx=x+0.5-c; dy=y+0.5-c
            col=bg
            if dx*dx+dy*dy<=r*r: col=green
            # padlock body
            bx0,bx1,by0,by1=c-n*0.16,c+n*0.16,c-n*0.02,c+n*0.20
            if bx0<=x<=bx1 and by0<=y<=by1: col=white
            # shackle: ring segment above the body
            sr_out=n*0.12; sr_in=n*0.075; sy=c-n*0.02
            d=((x+0.5-c)**2+(y+0.5-sy)**2)**0.5
            if y<sy and sr_in<=d<=sr_out: col=white
            # keyhole
            if (x+0.5-c)**2+(y+0.5-(c+n*0.07))**2<=(n*0.03)**2: col=green
            row+=bytes(col)
        rows.append(bytes(row))
    raw=b''.join(rows)
    def chunk(t,d): return struct.pack('>I',len(d))+t+d+struct.pack('>I',zlib.crc32(t+d)&0xffffffff)
    data=b'\x89PNG\r\n\x1a\n'+chunk(b'IHDR',struct.pack('>IIBBBBB',n,n,8,2,0,0,0))+chunk(b'IDAT',zlib.compress(raw,9))+chunk(b'IEND',b'')
    open(path,'wb').write(data)
png(192, sys.argv[1]+'/icon-192.png'); png(512, sys.argv[1]+'/icon-512.png')
